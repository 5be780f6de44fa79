#pragma once
// OpenSSL SSL_CTX construction for both sides. Contexts are built once per config
// snapshot and shared by every connection that uses them.
#include <memory>
#include <stdexcept>
#include <string>

struct ssl_ctx_st;  // SSL_CTX

namespace portrelay::tls {

class TlsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ClientOptions {
  std::string ca_file;      // PEM bundle; empty = system default store
  bool verify_peer = true;  // false only with the loudly named config key
  // A client certificate (PEM chain) and its key, for servers that ask for one (Microsoft
  // 365 inbound connectors, private smarthosts). Both or neither.
  std::string cert_file;
  std::string key_file;
};

struct ServerOptions {
  std::string cert_file;  // PEM certificate chain
  std::string key_file;   // PEM private key
};

class Context {
 public:
  // TLS 1.2 minimum, sane cipher defaults, peer verification as configured.
  // Throws TlsError with a readable message (file names, OpenSSL reason) on failure.
  static std::shared_ptr<Context> client(const ClientOptions& options);
  static std::shared_ptr<Context> server(const ServerOptions& options);

  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  ssl_ctx_st* native() const { return ctx_; }
  bool verify_peer() const { return verify_peer_; }
  // The client certificate this context presents when a server asks, as
  // "CN=<subject CN> sha256=<fingerprint, hex>"; empty when it has none.
  const std::string& client_certificate() const { return client_certificate_; }

 private:
  Context(ssl_ctx_st* ctx, bool verify_peer) : ctx_(ctx), verify_peer_(verify_peer) {}
  ssl_ctx_st* ctx_;
  bool verify_peer_;
  std::string client_certificate_;
};

}  // namespace portrelay::tls
