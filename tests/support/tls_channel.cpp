#include "support/tls_channel.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <csignal>
#include <mutex>
#include <stdexcept>

#include "support/socket_util.hpp"

namespace portrelay::test {

std::string openssl_errors() {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

SslCtxPtr make_server_tls_context(const std::string& cert_file, const std::string& key_file) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) throw std::runtime_error("SSL_CTX_new: " + openssl_errors());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1) {
    throw std::runtime_error("certificate " + cert_file + ": " + openssl_errors());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1) {
    throw std::runtime_error("private key " + key_file + ": " + openssl_errors());
  }
  return ctx;
}

SslCtxPtr make_client_tls_context(const TlsClientOptions& options) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) throw std::runtime_error("SSL_CTX_new: " + openssl_errors());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  if (options.ca_file.empty()) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  } else {
    if (SSL_CTX_load_verify_locations(ctx.get(), options.ca_file.c_str(), nullptr) != 1) {
      throw std::runtime_error("CA file " + options.ca_file + ": " + openssl_errors());
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  return ctx;
}

template <typename Operation>
int TlsChannel::drive(Operation operation, std::chrono::steady_clock::time_point deadline,
                      bool* timed_out) {
  *timed_out = false;
  while (true) {
    int rc = operation();
    if (rc > 0) return rc;
    int error = SSL_get_error(ssl_, rc);
    short events = 0;
    if (error == SSL_ERROR_WANT_READ) {
      events = POLLIN;
    } else if (error == SSL_ERROR_WANT_WRITE) {
      events = POLLOUT;
    } else {
      return -error;
    }
    if (!wait_for_io(fd_, events, deadline)) {
      *timed_out = true;
      return 0;
    }
  }
}

namespace {

// OpenSSL's socket BIO writes with write(), which raises SIGPIPE when the peer has gone.
// A test process must see that as a failed write, not die from it.
void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });
}

std::unique_ptr<TlsChannel> fail(std::string* error, const std::string& what) {
  if (error != nullptr) *error = what;
  return nullptr;
}

}  // namespace

std::unique_ptr<TlsChannel> TlsChannel::accept(SSL_CTX* ctx, int fd,
                                               std::chrono::milliseconds timeout,
                                               std::string* error) {
  ignore_sigpipe();
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return fail(error, "SSL_new: " + openssl_errors());
  std::unique_ptr<TlsChannel> channel(new TlsChannel(ssl, fd));
  set_nonblocking(fd, true);
  SSL_set_fd(ssl, fd);
  bool timed_out = false;
  int rc = channel->drive([ssl] { return SSL_accept(ssl); },
                          std::chrono::steady_clock::now() + timeout, &timed_out);
  if (rc <= 0) return fail(error, timed_out ? "TLS handshake timed out" : openssl_errors());
  return channel;
}

std::unique_ptr<TlsChannel> TlsChannel::connect(SSL_CTX* ctx, int fd,
                                                const TlsClientOptions& options,
                                                std::chrono::milliseconds timeout,
                                                std::string* error) {
  ignore_sigpipe();
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return fail(error, "SSL_new: " + openssl_errors());
  std::unique_ptr<TlsChannel> channel(new TlsChannel(ssl, fd));
  if (!options.server_name.empty()) {
    SSL_set_tlsext_host_name(ssl, options.server_name.c_str());
    // An IP literal is checked against IP SANs, anything else against DNS names.
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, options.server_name.c_str()) != 1) {
      ERR_clear_error();
      X509_VERIFY_PARAM_set1_host(param, options.server_name.c_str(), 0);
    }
  }
  set_nonblocking(fd, true);
  SSL_set_fd(ssl, fd);
  bool timed_out = false;
  int rc = channel->drive([ssl] { return SSL_connect(ssl); },
                          std::chrono::steady_clock::now() + timeout, &timed_out);
  if (rc <= 0) {
    if (timed_out) return fail(error, "TLS handshake timed out");
    long verify = SSL_get_verify_result(ssl);
    std::string reason = openssl_errors();
    if (verify != X509_V_OK)
      reason += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
    return fail(error, reason);
  }
  return channel;
}

TlsChannel::~TlsChannel() {
  // Best effort close_notify; the peer may already be gone.
  SSL_shutdown(ssl_);
  SSL_free(ssl_);
  ERR_clear_error();
}

ReadResult TlsChannel::read(char* buffer, std::size_t size, std::chrono::milliseconds timeout) {
  bool timed_out = false;
  std::size_t got = 0;
  int rc = drive([&] { return SSL_read_ex(ssl_, buffer, size, &got); },
                 std::chrono::steady_clock::now() + timeout, &timed_out);
  if (rc > 0) return {IoStatus::kOk, got};
  if (timed_out) return {IoStatus::kTimeout, 0};
  ERR_clear_error();
  // A peer that closes the TCP connection without close_notify still counts as closed.
  if (-rc == SSL_ERROR_ZERO_RETURN || -rc == SSL_ERROR_SYSCALL || -rc == SSL_ERROR_SSL) {
    return {IoStatus::kClosed, 0};
  }
  return {IoStatus::kError, 0};
}

bool TlsChannel::write_all(std::string_view bytes, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!bytes.empty()) {
    bool timed_out = false;
    std::size_t written = 0;
    int rc = drive([&] { return SSL_write_ex(ssl_, bytes.data(), bytes.size(), &written); },
                   deadline, &timed_out);
    if (rc <= 0) {
      ERR_clear_error();
      return false;
    }
    bytes.remove_prefix(written);
  }
  return true;
}

std::string TlsChannel::protocol() const { return SSL_get_version(ssl_); }

}  // namespace portrelay::test
