#pragma once
// One SMTP client connection to one upstream endpoint: resolve, TCP connect (bounded by
// connect_timeout), implicit TLS or STARTTLS, greeting, EHLO, AUTH; then commands and
// message bodies. Protocol decisions are made by smtp::ClientHandshake; this class only
// moves bytes and enforces timeouts.
#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "portrelay/net/connection.hpp"
#include "portrelay/net/resolver.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/relay/endpoint_runtime.hpp"
#include "portrelay/relay/message_body.hpp"
#include "portrelay/relay/upstream_response.hpp"
#include "portrelay/smtp/client_handshake.hpp"
#include "portrelay/smtp/data_reader.hpp"
#include "portrelay/smtp/reply.hpp"

namespace portrelay::relay {

// What happened on the way to "ready", for `portrelay probe` and logs. Times are
// milliseconds since connect() was called; -1 when the stage was not reached.
struct ConnectTrace {
  std::vector<std::string> addresses;  // resolved, in the order tried
  std::string connected_address;
  double resolved_ms = -1;
  double tcp_ms = -1;
  double tls_ms = -1;
  double ready_ms = -1;
  std::string tls_version;
  std::string tls_cipher;
  std::string greeting;                 // the 220 line
  std::vector<std::string> extensions;  // EHLO keywords (after TLS when TLS is used)
  bool authenticated = false;
};

class UpstreamConnection {
 public:
  using ReadyCallback = std::function<void(std::optional<AttemptFailure> failure)>;
  using ResponseCallback = std::function<void(const UpstreamResponse& response)>;

  UpstreamConnection(uv_loop_t* loop, const EndpointRuntime& endpoint,
                     const UpstreamTimeouts& timeouts, std::string helo_name);
  ~UpstreamConnection();
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  // Runs until the endpoint is ready for MAIL, or fails. Called at most once.
  void connect(ReadyCallback callback);
  // For a pooled connection: RSET, answered 2xx within `limit`, means it is still alive.
  void revalidate(config::Duration limit, ReadyCallback callback);
  // Sends one command line (without CRLF) and waits for its reply.
  void command(const std::string& line, ResponseCallback callback);
  // After a 354: sends the body dot-stuffed, then ".", and waits for the final reply.
  void send_body(const MessageBody& body, ResponseCallback callback);
  // Polite goodbye: QUIT, then close without waiting long. Mid-body the connection is
  // just closed: a QUIT then would land inside the message.
  void quit();

  bool usable() const { return ready_ && !broken_; }
  // A command or body is in flight: the connection cannot be reused or politely closed.
  bool busy() const { return response_callback_ != nullptr || body_ != nullptr; }
  bool tcp_connected() const { return connection_ != nullptr; }
  // Came out of the pool (it carried an earlier message) rather than a fresh connect.
  bool reused() const { return reused_; }
  void mark_reused() { reused_ = true; }
  const config::Endpoint& endpoint() const { return runtime_.endpoint; }
  const smtp::Capabilities& capabilities() const { return handshake_.capabilities(); }
  std::string tls_version() const;
  std::chrono::steady_clock::duration ready_after() const { return ready_after_; }
  const ConnectTrace& trace() const { return trace_; }

 private:
  void connect_next_address();
  void on_tcp_connected(std::unique_ptr<net::TcpStream> stream);
  void on_address_failed(net::TcpStream* stream, int status);
  void on_data(std::string_view plaintext);
  void on_closed(int status);
  void on_reply(const smtp::Reply& reply);
  void perform(const smtp::HandshakeAction& action);
  void start_tls();
  void fail_connect(FailureReason reason, std::string detail);
  void fail_response(FailureReason reason, std::string detail);
  void arm_timer(config::Duration timeout, FailureReason reason, std::string what);
  void pump_body();

  uv_loop_t* loop_;
  const EndpointRuntime& runtime_;
  UpstreamTimeouts timeouts_;
  smtp::ClientHandshake handshake_;
  std::unique_ptr<net::Resolution> resolution_;
  std::vector<sockaddr_storage> addresses_;
  std::size_t next_address_ = 0;
  // TCP attempts racing between the host's addresses (RFC 8305 section 5).
  struct PendingTcp {
    std::unique_ptr<net::TcpStream> stream;
    std::string target;
  };
  std::vector<PendingTcp> pending_;
  net::Timer address_timer_;
  AttemptFailure last_address_failure_;
  std::unique_ptr<net::Connection> connection_;
  net::Timer timer_;
  smtp::ReplyParser parser_;
  ReadyCallback ready_callback_;
  ResponseCallback response_callback_;
  bool ready_ = false;
  bool broken_ = false;
  bool reused_ = false;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::duration ready_after_{};
  ConnectTrace trace_;
  double elapsed_ms() const;
  // Body streaming state.
  const MessageBody* body_ = nullptr;
  std::uint64_t body_offset_ = 0;
  smtp::DotStuffer stuffer_;
  // Replies already received when a command is sent cannot answer it: on_data counts
  // its batches, and a command sent while one is processed remembers which.
  std::uint64_t batch_ = 0;
  bool in_batch_ = false;
  std::uint64_t sent_in_batch_ = 0;
};

}  // namespace portrelay::relay
