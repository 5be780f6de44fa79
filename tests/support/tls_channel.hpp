#pragma once
// OpenSSL channel for the test peers: server side (implicit TLS, STARTTLS) and client side.
// The socket is switched to non-blocking mode and every wait goes through poll(), so a
// silent peer costs at most the given timeout instead of hanging a test.
#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <string>

#include "support/channel.hpp"

namespace portrelay::test {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// Server context from PEM files. Throws std::runtime_error with the OpenSSL reason.
SslCtxPtr make_server_tls_context(const std::string& cert_file, const std::string& key_file);

struct TlsClientOptions {
  std::string ca_file;                    // trust anchors; empty = do not verify the peer
  std::string server_name = "localhost";  // SNI and the name checked in the certificate
};

// Client context, TLS 1.2 minimum. Throws std::runtime_error with the OpenSSL reason.
SslCtxPtr make_client_tls_context(const TlsClientOptions& options);

class TlsChannel : public Channel {
 public:
  // Runs the handshake on `fd`. Returns nullptr and fills `error` on failure.
  static std::unique_ptr<TlsChannel> accept(SSL_CTX* ctx, int fd, std::chrono::milliseconds timeout,
                                            std::string* error);
  static std::unique_ptr<TlsChannel> connect(SSL_CTX* ctx, int fd, const TlsClientOptions& options,
                                             std::chrono::milliseconds timeout, std::string* error);
  ~TlsChannel() override;

  ReadResult read(char* buffer, std::size_t size, std::chrono::milliseconds timeout) override;
  bool write_all(std::string_view bytes, std::chrono::milliseconds timeout) override;
  bool is_tls() const override { return true; }

  // Negotiated protocol, e.g. "TLSv1.3".
  std::string protocol() const;

 private:
  TlsChannel(SSL* ssl, int fd) : ssl_(ssl), fd_(fd) {}
  // Retries `operation` until it succeeds, fails, or the deadline passes.
  template <typename Operation>
  int drive(Operation operation, std::chrono::steady_clock::time_point deadline, bool* timed_out);

  SSL* ssl_;
  int fd_;
};

// Text of the OpenSSL error queue (clears it).
std::string openssl_errors();

}  // namespace portrelay::test
