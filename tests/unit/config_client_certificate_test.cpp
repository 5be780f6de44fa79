// [[upstream]] tls_client_cert / tls_client_key (#18 item 4): both or neither, readable at
// load time with file:line:col errors, the key's permissions warned about like [server]
// tls_key, never with tls = "none", shown by `check`.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "portrelay/config/config.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::config {
namespace {

constexpr const char* kSource = "portrelay.toml";

std::string error_of(const std::string& text) {
  try {
    parse_config(text, kSource);
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "(no error)";
}

class ClientCertificateConfig : public ::testing::Test {
 protected:
  ClientCertificateConfig() {
    cert_ = dir_.write_file("client.pem", "-----BEGIN CERTIFICATE-----\n");
    key_ = dir_.write_file("client.key", "-----BEGIN PRIVATE KEY-----\n");
    ::chmod(key_.c_str(), 0600);
  }
  static std::string upstream(const std::string& extra) {
    return "[[upstream]]\nhost = \"relay.example.com\"\nport = 587\n" + extra;
  }
  static std::string assign(const std::string& key, const std::string& path) {
    return key + " = '" + path + "'\n";
  }
  test::TempDir dir_{"portrelay-client-cert"};
  std::string cert_, key_;
};

TEST_F(ClientCertificateConfig, IsSetOnEveryEndpointOfTheTable) {
  const Config config =
      parse_config("[[upstream]]\nhost = \"relay.example.com\"\nports = [587, 465]\n" +
                       assign("tls_client_cert", cert_) + assign("tls_client_key", key_),
                   kSource);
  ASSERT_EQ(config.chain.size(), 2u);
  for (const Endpoint& endpoint : config.chain) {
    EXPECT_EQ(endpoint.tls_client_cert, cert_);
    EXPECT_EQ(endpoint.tls_client_key, key_);
  }
  EXPECT_TRUE(config.warnings.empty());
  EXPECT_NE(describe_chain(config).find("client_cert=" + cert_), std::string::npos)
      << describe_chain(config);
  EXPECT_TRUE(parse_config(upstream(""), kSource).chain[0].tls_client_cert.empty());
}

TEST_F(ClientCertificateConfig, BothOrNeither) {
  EXPECT_EQ(error_of(upstream(assign("tls_client_cert", cert_))),
            "portrelay.toml:4:19: upstream.tls_client_cert: needs upstream.tls_client_key too "
            "(the certificate and its key)");
  EXPECT_EQ(error_of(upstream(assign("tls_client_key", key_))),
            "portrelay.toml:4:18: upstream.tls_client_key: needs upstream.tls_client_cert too "
            "(the certificate and its key)");
}

TEST_F(ClientCertificateConfig, AMissingOrUnreadableFileIsAnErrorWithItsPosition) {
  const std::string missing = dir_.file("missing.key");
  EXPECT_EQ(
      error_of(upstream(assign("tls_client_cert", cert_) + assign("tls_client_key", missing))),
      "portrelay.toml:5:18: upstream.tls_client_key: cannot read \"" + missing +
          "\": No such file or directory");
  EXPECT_EQ(
      error_of(upstream(assign("tls_client_cert", dir_.path()) + assign("tls_client_key", key_))),
      "portrelay.toml:4:19: upstream.tls_client_cert: cannot read \"" + dir_.path() +
          "\": not a regular file");
}

TEST_F(ClientCertificateConfig, AKeyOthersCanReadIsWarned) {
  ::chmod(key_.c_str(), 0640);
  const Config config = parse_config(
      upstream(assign("tls_client_cert", cert_) + assign("tls_client_key", key_)), kSource);
  ASSERT_EQ(config.warnings.size(), 1u);
  EXPECT_EQ(config.warnings[0], "portrelay.toml:5: upstream.tls_client_key: \"" + key_ +
                                    "\" (the TLS client private key) is readable by group or "
                                    "others; restrict it (chmod 600)");
}

TEST_F(ClientCertificateConfig, NeedsTls) {
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"127.0.0.1\"\nport = 25\ntls = \"none\"\n" +
                     assign("tls_client_cert", cert_) + assign("tls_client_key", key_)),
            "portrelay.toml:4:7: upstream.tls: \"none\" with tls_client_cert set: a client "
            "certificate needs TLS (use \"starttls\" or \"implicit\")");
}

}  // namespace
}  // namespace portrelay::config
