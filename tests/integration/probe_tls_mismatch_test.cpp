// `portrelay probe` recognises a TLS-mode mismatch within a second or two and names the `tls`
// value to try, instead of waiting out greeting_timeout and saying only NO GREETING.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>

#include "portrelay/config/config.hpp"
#include "portrelay/demo/test_pki.hpp"
#include "portrelay/probe/probe.hpp"
#include "support/fake_upstream.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::test {
namespace {

using namespace std::chrono_literals;

// greeting_timeout is 30 s, as by default: every verdict below must come long before it.
std::string one_endpoint_toml(const std::string& host, std::uint16_t port,
                              const std::string& keys) {
  std::ostringstream toml;
  toml << "[server]\nlisten = [\"127.0.0.1:0\"]\n[metrics]\nenabled = false\n"
       << "[relay]\nconnect_timeout = \"2s\"\ngreeting_timeout = \"30s\"\n"
       << "[[upstream]]\nhost = \"" << host << "\"\nport = " << port << "\n"
       << keys;
  return toml.str();
}

struct Outcome {
  probe::EndpointProbe probe;
  std::chrono::steady_clock::duration took;
};

Outcome probe_one(const std::string& toml) {
  const config::Config config = config::parse_config(toml, "probe.toml");
  const auto started = std::chrono::steady_clock::now();
  auto probes = probe::run_probes(config);
  Outcome outcome{probes.at(0), std::chrono::steady_clock::now() - started};
  return outcome;
}

class ProbeTlsMismatch : public ::testing::Test {
 protected:
  void SetUp() override { pki_ = tls::generate_test_pki(dir_.file("pki")); }

  FakeUpstream::Config implicit_tls_server(const std::string& host, std::uint16_t port) const {
    FakeUpstream::Config config;
    config.host = host;
    config.port = port;
    config.cert_file = pki_.good_cert;
    config.key_file = pki_.good_key;
    config.implicit_tls = true;
    return config;
  }

  TempDir dir_{"probe-tls-mismatch"};
  tls::GeneratedPki pki_;
};

// An implicit-TLS server on 2465 (as at Amazon SES) probed with the default mode for a plain
// port number, STARTTLS: it waits for a ClientHello and says nothing.
TEST_F(ProbeTlsMismatch, SilentServerOnACommonImplicitTlsPortSuggestsImplicit) {
  // A port number that means something needs a fixed port: 2465 on an address of our own.
  const std::string host = "127.0.24.65";
  std::unique_ptr<FakeUpstream> server;
  try {
    server = std::make_unique<FakeUpstream>(implicit_tls_server(host, 2465));
  } catch (const std::system_error& error) {
    GTEST_SKIP() << "cannot listen on " << host << ":2465: " << error.what();
  }
  const Outcome outcome = probe_one(one_endpoint_toml(host, 2465, ""));
  EXPECT_EQ(outcome.probe.endpoint.tls, TlsMode::StartTls);
  EXPECT_EQ(probe::verdict(outcome.probe, 2s), "NO GREETING");
  EXPECT_NE(outcome.probe.detail.find("try tls = \"implicit\""), std::string::npos)
      << outcome.probe.detail;
  EXPECT_LT(outcome.took, 3s) << "must not wait out greeting_timeout (30s)";

  // With the mode it suggests, the same server is usable.
  const Outcome fixed = probe_one(one_endpoint_toml(
      host, 2465,
      "tls = \"implicit\"\nca_file = \"" + pki_.ca_cert + "\"\ntls_server_name = \"localhost\"\n"));
  EXPECT_TRUE(fixed.probe.ok) << fixed.probe.detail;
}

// A server whose first bytes are a TLS alert record rather than "220 ...".
TEST_F(ProbeTlsMismatch, TlsBytesWhereTheGreetingWasDueSuggestImplicit) {
  FakeUpstream::Config config;
  config.greeting = std::string("\x15\x03\x03\x00\x02\x02\x28", 7);  // alert: handshake_failure
  FakeUpstream server(config);
  const Outcome outcome = probe_one(one_endpoint_toml("127.0.0.1", server.port(), ""));
  EXPECT_FALSE(outcome.probe.ok);
  EXPECT_EQ(outcome.probe.reason, FailureReason::Protocol);
  EXPECT_NE(outcome.probe.detail.find("this port speaks implicit TLS; try tls = \"implicit\""),
            std::string::npos)
      << outcome.probe.detail;
  EXPECT_LT(outcome.took, 2s);
}

// The reverse: tls = "implicit" toward a server that greets in plain text.
TEST_F(ProbeTlsMismatch, PlaintextGreetingOnAnImplicitTlsEndpointSuggestsStartTls) {
  FakeUpstream server;
  const Outcome outcome = probe_one(one_endpoint_toml(
      "127.0.0.1", server.port(),
      "tls = \"implicit\"\nca_file = \"" + pki_.ca_cert + "\"\ntls_server_name = \"localhost\"\n"));
  EXPECT_EQ(probe::verdict(outcome.probe, 2s), "TLS ERROR");
  EXPECT_NE(outcome.probe.detail.find("try tls = \"starttls\""), std::string::npos)
      << outcome.probe.detail;
  EXPECT_LT(outcome.took, 2s);
}

// The right mode toward a plain SMTP server: no mismatch, and the probe succeeds.
TEST_F(ProbeTlsMismatch, NoHintWhenTheModeIsRight) {
  FakeUpstream server;
  const Outcome outcome =
      probe_one(one_endpoint_toml("127.0.0.1", server.port(), "tls = \"opportunistic\"\n"));
  EXPECT_TRUE(outcome.probe.ok) << outcome.probe.detail;
}

}  // namespace
}  // namespace portrelay::test
