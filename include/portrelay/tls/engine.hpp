#pragma once
// One TLS connection over memory BIOs. No I/O: the owner moves ciphertext between the
// engine and the socket, and plaintext between the engine and the protocol. This keeps
// the event loop owning the sockets and lets STARTTLS switch a live connection to TLS.
#include <memory>
#include <string>
#include <string_view>

#include "portrelay/tls/context.hpp"

struct ssl_st;  // SSL

namespace portrelay::tls {

class Engine {
 public:
  enum class State { Handshaking, Established, Closed, Failed };
  enum class Failure { None, Handshake, Verify };

  // Client: `server_name` is sent as SNI and, when the context verifies, checked against
  // the certificate (DNS name, or IP address if it is an IP literal).
  static std::unique_ptr<Engine> client(std::shared_ptr<Context> context,
                                        const std::string& server_name);
  static std::unique_ptr<Engine> server(std::shared_ptr<Context> context);
  ~Engine();

  // Bytes received from the network. Drives the handshake and decrypts application
  // data into the plaintext buffer. Never throws; errors move the state to Failed.
  void feed_ciphertext(std::string_view bytes);
  // Application bytes to send. Buffered until the handshake completes.
  void write_plaintext(std::string_view bytes);
  // Send close_notify (the peer's close_notify moves the state to Closed).
  void shutdown();

  // Bytes that must be written to the network now (handshake records, encrypted data).
  std::string take_ciphertext();
  // Decrypted bytes received from the peer.
  std::string take_plaintext();

  State state() const { return state_; }
  Failure failure() const { return failure_; }
  // Readable reason when Failed: "certificate verify failed: hostname mismatch", ...
  const std::string& error() const { return error_; }
  // "TLSv1.3"; empty before the handshake completes.
  std::string protocol_version() const;
  std::string cipher() const;
  // Client: the server asked for a certificate during the handshake, and the context's
  // (Context::client_certificate(), if any) was offered.
  bool certificate_requested() const { return certificate_requested_; }

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

 private:
  Engine(std::shared_ptr<Context> context, ssl_st* ssl);
  void advance();  // handshake / read / write as far as the buffers allow
  void fail(Failure failure, std::string message);

  std::shared_ptr<Context> context_;
  ssl_st* ssl_;
  State state_ = State::Handshaking;
  Failure failure_ = Failure::None;
  std::string error_;
  std::string pending_plaintext_out_;  // written before the handshake completed
  std::string plaintext_in_;
  bool certificate_requested_ = false;
};

}  // namespace portrelay::tls
