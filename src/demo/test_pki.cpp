#include "portrelay/demo/test_pki.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string_view>

#include "portrelay/tls/context.hpp"
#include "portrelay/tls/openssl_errors.hpp"

namespace portrelay::tls {

namespace {

constexpr long kDay = 24L * 60 * 60;

struct OpenSslFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
  void operator()(X509* cert) const { X509_free(cert); }
  void operator()(X509_EXTENSION* extension) const { X509_EXTENSION_free(extension); }
  void operator()(BIGNUM* number) const { BN_free(number); }
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, OpenSslFree>;
using CertPtr = std::unique_ptr<X509, OpenSslFree>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, OpenSslFree>;
using BignumPtr = std::unique_ptr<BIGNUM, OpenSslFree>;
using BioPtr = std::unique_ptr<BIO, OpenSslFree>;

[[noreturn]] void fail(const std::string& what) {
  throw TlsError("test PKI: " + what + ": " + take_openssl_errors());
}

KeyPtr new_key() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) {
    fail("cannot generate EC P-256 key");
  }
  return key;
}

void set_random_serial(X509* cert) {
  // 63 random bits with the top bit clear: unique enough and always positive.
  BignumPtr serial(BN_new());
  if (!serial || BN_rand(serial.get(), 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) == nullptr) {
    fail("cannot set serial number");
  }
}

void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtensionPtr extension(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!extension || X509_add_ext(cert, extension.get(), -1) != 1) {
    fail(std::string("cannot add extension ") + OBJ_nid2sn(nid) + "=" + value);
  }
}

struct CertSpec {
  std::string common_name;
  std::string subject_alt_names;  // empty for the CA
  long not_before_offset = -kDay;
  long not_after_offset = 30 * kDay;
  bool is_ca = false;
};

// `issuer`/`issuer_key` null means self-signed with `key`.
CertPtr make_cert(const CertSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  CertPtr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    fail("cannot create certificate");
  }
  set_random_serial(cert.get());
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.not_before_offset) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.not_after_offset) == nullptr) {
    fail("cannot set validity");
  }
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("portrelay test PKI"), -1,
                                 -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(spec.common_name.c_str()),
                                 -1, -1, 0) != 1) {
    fail("cannot set subject");
  }
  X509* signer = issuer != nullptr ? issuer : cert.get();
  EVP_PKEY* signer_key = issuer_key != nullptr ? issuer_key : key;
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1) {
    fail("cannot set issuer or public key");
  }

  if (spec.is_ca) {
    add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    add_extension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), signer, NID_key_usage, "critical,digitalSignature");
    add_extension(cert.get(), signer, NID_ext_key_usage, "serverAuth,clientAuth");
    add_extension(cert.get(), signer, NID_subject_alt_name, spec.subject_alt_names.c_str());
  }
  add_extension(cert.get(), signer, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) {
    add_extension(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
  }
  if (X509_sign(cert.get(), signer_key, EVP_sha256()) == 0) {
    fail("cannot sign certificate for " + spec.common_name);
  }
  return cert;
}

void write_file(const std::string& path, std::string_view content, mode_t mode) {
  const auto io_error = [&path](const char* action) {
    return TlsError("test PKI: cannot " + std::string(action) + " '" + path +
                    "': " + std::strerror(errno));
  };
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    throw io_error("create");
  }
  // An existing file keeps its old mode through O_CREAT; keys must still end up private.
  if (::fchmod(fd, mode) != 0) {
    const TlsError error = io_error("chmod");
    ::close(fd);
    throw error;
  }
  while (!content.empty()) {
    const ssize_t written = ::write(fd, content.data(), content.size());
    if (written < 0 && errno == EINTR) {
      continue;
    }
    if (written <= 0) {
      const TlsError error = io_error("write");
      ::close(fd);
      throw error;
    }
    content.remove_prefix(static_cast<size_t>(written));
  }
  if (::close(fd) != 0) {
    throw io_error("close");
  }
}

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(length));
}

void write_cert(const std::string& path, X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    fail("cannot encode certificate " + path);
  }
  write_file(path, bio_contents(bio.get()), 0644);
}

void write_key(const std::string& path, EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    fail("cannot encode key " + path);
  }
  write_file(path, bio_contents(bio.get()), 0600);
}

}  // namespace

GeneratedPki generate_test_pki(const std::string& dir) {
  ERR_clear_error();
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    throw TlsError("test PKI: cannot create directory '" + dir + "': " + error.message());
  }

  GeneratedPki pki;
  pki.dir = dir;
  pki.ca_cert = dir + "/ca.pem";
  pki.good_cert = dir + "/good.pem";
  pki.good_key = dir + "/good.key";
  pki.wrong_host_cert = dir + "/wrong-host.pem";
  pki.wrong_host_key = dir + "/wrong-host.key";
  pki.expired_cert = dir + "/expired.pem";
  pki.expired_key = dir + "/expired.key";
  pki.self_signed_cert = dir + "/self-signed.pem";
  pki.self_signed_key = dir + "/self-signed.key";

  KeyPtr ca_key = new_key();
  CertPtr ca = make_cert({.common_name = "portrelay test CA", .is_ca = true}, ca_key.get(), nullptr,
                         nullptr);
  write_cert(pki.ca_cert, ca.get());

  const auto issue = [&](const CertSpec& spec, const std::string& cert_path,
                         const std::string& key_path, bool self_signed) {
    KeyPtr key = new_key();
    CertPtr cert = self_signed ? make_cert(spec, key.get(), nullptr, nullptr)
                               : make_cert(spec, key.get(), ca.get(), ca_key.get());
    write_cert(cert_path, cert.get());
    write_key(key_path, key.get());
  };
  issue({.common_name = "localhost", .subject_alt_names = "DNS:localhost,IP:127.0.0.1,IP:::1"},
        pki.good_cert, pki.good_key, false);
  issue({.common_name = "wrong.example.invalid", .subject_alt_names = "DNS:wrong.example.invalid"},
        pki.wrong_host_cert, pki.wrong_host_key, false);
  issue({.common_name = "localhost",
         .subject_alt_names = "DNS:localhost,IP:127.0.0.1,IP:::1",
         .not_before_offset = -10 * kDay,
         .not_after_offset = -kDay},
        pki.expired_cert, pki.expired_key, false);
  issue({.common_name = "localhost", .subject_alt_names = "DNS:localhost,IP:127.0.0.1,IP:::1"},
        pki.self_signed_cert, pki.self_signed_key, true);
  return pki;
}

}  // namespace portrelay::tls
