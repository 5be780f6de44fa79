#pragma once
// Generates a throw-away PKI in a directory: used by `portrelay demo` (a demo CA made at
// start) and by the tests. Keys are EC P-256, generated fresh every call.
#include <string>

namespace portrelay::tls {

struct GeneratedPki {
  std::string dir;
  std::string ca_cert;    // CA certificate (PEM) that signs the certs below
  std::string good_cert;  // CN/SAN "localhost", SAN IP 127.0.0.1 and ::1, valid now
  std::string good_key;
  std::string wrong_host_cert;  // signed by the CA, SAN "wrong.example.invalid" only
  std::string wrong_host_key;
  std::string expired_cert;  // signed by the CA, SAN localhost, notAfter in the past
  std::string expired_key;
  std::string self_signed_cert;  // SAN localhost, self-signed (not from the CA)
  std::string self_signed_key;
};

// Creates `dir` if needed and writes the files there. Throws TlsError on failure.
GeneratedPki generate_test_pki(const std::string& dir);

}  // namespace portrelay::tls
