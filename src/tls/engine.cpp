#include "portrelay/tls/engine.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <utility>

#include "portrelay/tls/openssl_errors.hpp"

namespace portrelay::tls {

namespace {

// One TLS record carries at most 16 KiB of plaintext.
constexpr size_t kReadChunk = 16 * 1024;

bool is_ip_literal(const std::string& name) {
  unsigned char address[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, name.c_str(), address) == 1 ||
         inet_pton(AF_INET6, name.c_str(), address) == 1;
}

// Attaches the two memory BIOs; the SSL owns them from here on.
ssl_st* new_ssl(const Context& context) {
  ERR_clear_error();
  SSL* ssl = SSL_new(context.native());
  if (ssl == nullptr) {
    throw TlsError("cannot create TLS connection: " + take_openssl_errors());
  }
  BIO* network_in = BIO_new(BIO_s_mem());
  BIO* network_out = BIO_new(BIO_s_mem());
  if (network_in == nullptr || network_out == nullptr) {
    BIO_free(network_in);
    BIO_free(network_out);
    SSL_free(ssl);
    throw TlsError("cannot create TLS memory buffers: " + take_openssl_errors());
  }
  SSL_set_bio(ssl, network_in, network_out);
  return ssl;
}

}  // namespace

Engine::Engine(std::shared_ptr<Context> context, ssl_st* ssl)
    : context_(std::move(context)), ssl_(ssl) {}

Engine::~Engine() { SSL_free(ssl_); }

std::unique_ptr<Engine> Engine::client(std::shared_ptr<Context> context,
                                       const std::string& server_name) {
  std::unique_ptr<Engine> engine(new Engine(context, new_ssl(*context)));
  SSL* ssl = engine->ssl_;
  SSL_set_connect_state(ssl);
  // OpenSSL calls this when the server's CertificateRequest arrives, before it sends ours.
  SSL_set_cert_cb(
      ssl,
      [](SSL*, void* self) {
        static_cast<Engine*>(self)->certificate_requested_ = true;
        return 1;
      },
      engine.get());
  const bool ip_literal = is_ip_literal(server_name);
  // RFC 6066 forbids IP literals in SNI.
  if (!ip_literal && !server_name.empty() &&
      SSL_set_tlsext_host_name(ssl, server_name.c_str()) != 1) {
    throw TlsError("cannot set TLS server name '" + server_name + "': " + take_openssl_errors());
  }
  if (context->verify_peer() && !server_name.empty()) {
    int ok = 0;
    if (ip_literal) {
      ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_name.c_str());
    } else {
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      ok = SSL_set1_host(ssl, server_name.c_str());
    }
    if (ok != 1) {
      throw TlsError("cannot set expected TLS peer name '" + server_name +
                     "': " + take_openssl_errors());
    }
  }
  // Produce the ClientHello right away so take_ciphertext() has something to send.
  engine->advance();
  return engine;
}

std::unique_ptr<Engine> Engine::server(std::shared_ptr<Context> context) {
  std::unique_ptr<Engine> engine(new Engine(context, new_ssl(*context)));
  SSL_set_accept_state(engine->ssl_);
  return engine;
}

void Engine::feed_ciphertext(std::string_view bytes) {
  if (state_ == State::Failed || state_ == State::Closed) {
    return;  // nothing useful can come from more bytes
  }
  BIO* network_in = SSL_get_rbio(ssl_);
  while (!bytes.empty()) {
    const int chunk = static_cast<int>(std::min<size_t>(bytes.size(), INT_MAX));
    const int written = BIO_write(network_in, bytes.data(), chunk);
    if (written <= 0) {
      fail(Failure::Handshake, "cannot buffer received TLS data: " + take_openssl_errors());
      return;
    }
    bytes.remove_prefix(static_cast<size_t>(written));
  }
  advance();
}

void Engine::write_plaintext(std::string_view bytes) {
  if (state_ == State::Failed || state_ == State::Closed || bytes.empty()) {
    return;
  }
  if ((SSL_get_shutdown(ssl_) & SSL_SENT_SHUTDOWN) != 0) {
    return;  // after our close_notify nothing more may be sent
  }
  pending_plaintext_out_.append(bytes);
  if (state_ == State::Established) {
    advance();
  }
}

void Engine::shutdown() {
  if (state_ == State::Handshaking) {
    // close_notify is meaningless before the handshake; the owner just drops the socket.
    state_ = State::Closed;
    return;
  }
  if (state_ != State::Established) {
    return;
  }
  advance();  // flush what the application already wrote
  if (state_ != State::Established) {
    return;
  }
  ERR_clear_error();
  if (SSL_shutdown(ssl_) < 0) {
    fail(Failure::Handshake, "TLS shutdown failed: " + take_openssl_errors());
  }
}

std::string Engine::take_ciphertext() {
  BIO* network_out = SSL_get_wbio(ssl_);
  std::string out;
  const size_t pending = BIO_ctrl_pending(network_out);
  if (pending == 0) {
    return out;
  }
  out.resize(pending);
  size_t read = 0;
  if (BIO_read_ex(network_out, out.data(), pending, &read) != 1) {
    read = 0;
  }
  out.resize(read);
  return out;
}

std::string Engine::take_plaintext() { return std::exchange(plaintext_in_, std::string()); }

std::string Engine::protocol_version() const {
  return SSL_is_init_finished(ssl_) ? SSL_get_version(ssl_) : std::string();
}

std::string Engine::cipher() const {
  const char* name = SSL_is_init_finished(ssl_) ? SSL_get_cipher_name(ssl_) : nullptr;
  return name != nullptr ? std::string(name) : std::string();
}

void Engine::advance() {
  if (state_ == State::Handshaking) {
    ERR_clear_error();
    const int result = SSL_do_handshake(ssl_);
    if (result != 1) {
      const int error = SSL_get_error(ssl_, result);
      if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
        return;
      }
      // Only a verifying client gets a meaningful verify result; without verification
      // OpenSSL records the result but carries on, so it must not be blamed here.
      const long verify_result = SSL_get_verify_result(ssl_);
      const bool verifying_client = !SSL_is_server(ssl_) && context_->verify_peer();
      const unsigned long first_error = ERR_peek_error();
      const bool verify_reason = ERR_GET_LIB(first_error) == ERR_LIB_SSL &&
                                 ERR_GET_REASON(first_error) == SSL_R_CERTIFICATE_VERIFY_FAILED;
      if (verifying_client && (verify_result != X509_V_OK || verify_reason)) {
        const std::string detail = verify_result != X509_V_OK
                                       ? X509_verify_cert_error_string(verify_result)
                                       : take_openssl_errors();
        ERR_clear_error();
        fail(Failure::Verify, "certificate verify failed: " + detail);
      } else {
        fail(Failure::Handshake,
             "TLS handshake failed: " + take_openssl_errors("connection closed by peer"));
      }
      return;
    }
    state_ = State::Established;
  }
  if (state_ != State::Established) {
    return;
  }

  // Drain decrypted data first so a peer's close_notify is seen before we write more.
  char buffer[kReadChunk];
  for (;;) {
    ERR_clear_error();
    size_t read = 0;
    if (SSL_read_ex(ssl_, buffer, sizeof buffer, &read) == 1) {
      plaintext_in_.append(buffer, read);
      continue;
    }
    const int error = SSL_get_error(ssl_, 0);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
      break;
    }
    if (error == SSL_ERROR_ZERO_RETURN) {
      state_ = State::Closed;
      pending_plaintext_out_.clear();
      // Answer the peer's close_notify unless we already sent ours.
      if ((SSL_get_shutdown(ssl_) & SSL_SENT_SHUTDOWN) == 0) {
        ERR_clear_error();
        SSL_shutdown(ssl_);
        ERR_clear_error();
      }
      return;
    }
    fail(Failure::Handshake, "TLS read failed: " + take_openssl_errors("unexpected end of stream"));
    return;
  }

  size_t offset = 0;
  while (offset < pending_plaintext_out_.size()) {
    ERR_clear_error();
    size_t written = 0;
    if (SSL_write_ex(ssl_, pending_plaintext_out_.data() + offset,
                     pending_plaintext_out_.size() - offset, &written) == 1) {
      offset += written;
      continue;
    }
    const int error = SSL_get_error(ssl_, 0);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
      break;  // retried from the same bytes on the next advance()
    }
    fail(Failure::Handshake, "TLS write failed: " + take_openssl_errors());
    return;
  }
  if (offset == pending_plaintext_out_.size()) {
    pending_plaintext_out_.clear();
  } else {
    pending_plaintext_out_.erase(0, offset);
  }
}

void Engine::fail(Failure failure, std::string message) {
  state_ = State::Failed;
  failure_ = failure;
  error_ = std::move(message);
  pending_plaintext_out_.clear();
}

}  // namespace portrelay::tls
