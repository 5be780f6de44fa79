#include "portrelay/tls/context.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "portrelay/tls/openssl_errors.hpp"

namespace portrelay::tls {

namespace {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

[[noreturn]] void throw_tls_error(const std::string& what) {
  throw TlsError(what + ": " + take_openssl_errors());
}

// Settings shared by both sides: TLS 1.2 floor, no compression (CRIME), no
// renegotiation (a peer-triggered CPU sink with no use for SMTP).
SslCtxPtr new_context(const SSL_METHOD* method, const char* side) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(method));
  if (!ctx) {
    throw_tls_error(std::string("cannot create TLS ") + side + " context");
  }
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1) {
    throw_tls_error(std::string("cannot set TLS 1.2 minimum on ") + side + " context");
  }
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // The engine retries writes from a std::string that may have been reallocated.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return ctx;
}

// Loads a certificate chain and its private key into `ctx`, naming a mismatch plainly.
void use_certificate_and_key(SSL_CTX* ctx, const std::string& cert_file,
                             const std::string& key_file) {
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    throw_tls_error("cannot load certificate chain '" + cert_file + "'");
  }
  const std::string mismatch =
      "private key '" + key_file + "' does not match certificate '" + cert_file + "'";
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    // OpenSSL already compares key and certificate here; name that case plainly.
    const unsigned long error = ERR_peek_last_error();
    const bool mismatched =
        ERR_GET_LIB(error) == ERR_LIB_X509 && ERR_GET_REASON(error) == X509_R_KEY_VALUES_MISMATCH;
    throw_tls_error(mismatched ? mismatch : "cannot load private key '" + key_file + "'");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    throw_tls_error(mismatch);
  }
}

// "CN=relay.example.com sha256=3f9a..." for logs and the probe: which certificate it is.
std::string describe_certificate(X509* certificate) {
  std::string text = "CN=";
  char cn[256] = {};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, cn, sizeof cn) >
      0)
    text += cn;
  else
    text += "(none)";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_digest(certificate, EVP_sha256(), digest, &length) == 1) {
    static constexpr char kHex[] = "0123456789abcdef";
    text += " sha256=";
    for (unsigned int i = 0; i < length; ++i) {
      text += kHex[digest[i] >> 4];
      text += kHex[digest[i] & 0x0f];
    }
  }
  return text;
}

}  // namespace

std::shared_ptr<Context> Context::client(const ClientOptions& options) {
  SslCtxPtr ctx = new_context(TLS_client_method(), "client");
  // Trust anchors are loaded even without verification so a bad ca_file is reported
  // at configuration time instead of silently ignored.
  if (!options.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), options.ca_file.c_str(), nullptr) != 1) {
      throw_tls_error("cannot load CA file '" + options.ca_file + "'");
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
    throw_tls_error("cannot load the system CA store");
  }
  SSL_CTX_set_verify(ctx.get(), options.verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  std::string client_certificate;
  if (!options.cert_file.empty() || !options.key_file.empty()) {
    use_certificate_and_key(ctx.get(), options.cert_file, options.key_file);
    client_certificate = describe_certificate(SSL_CTX_get0_certificate(ctx.get()));
  }
  // Client sessions are not resumed (each relay connection stands alone).
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  std::shared_ptr<Context> context(new Context(ctx.release(), options.verify_peer));
  context->client_certificate_ = std::move(client_certificate);
  return context;
}

std::shared_ptr<Context> Context::server(const ServerOptions& options) {
  SslCtxPtr ctx = new_context(TLS_server_method(), "server");
  SSL_CTX_set_options(ctx.get(), SSL_OP_CIPHER_SERVER_PREFERENCE);
  use_certificate_and_key(ctx.get(), options.cert_file, options.key_file);
  // A bounded server-side cache lets reconnecting senders resume cheaply without
  // letting many clients grow memory without limit.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(ctx.get(), 1024);
  static constexpr unsigned char kSessionIdContext[] = "portrelay";
  SSL_CTX_set_session_id_context(ctx.get(), kSessionIdContext, sizeof kSessionIdContext - 1);
  SSL_CTX_set_num_tickets(ctx.get(), 1);
  return std::shared_ptr<Context>(new Context(ctx.release(), false));
}

Context::~Context() { SSL_CTX_free(ctx_); }

}  // namespace portrelay::tls
