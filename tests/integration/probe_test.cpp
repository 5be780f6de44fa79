// `portrelay probe` against a loopback chain with one endpoint for each kind of trouble:
// silently dropped, refused, healthy (implicit TLS + AUTH), wrong certificate, bad password.
#include "portrelay/probe/probe.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "portrelay/config/config.hpp"
#include "portrelay/demo/test_pki.hpp"
#include "support/blocked_ports.hpp"
#include "support/fake_upstream.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kUser = "relay-user";
constexpr const char* kPassword = "probe-test-password";
constexpr const char* kPasswordEnv = "PORTRELAY_PROBE_TEST_PASSWORD";

struct Upstream {
  std::string name;
  std::uint16_t port;
  std::string keys;  // extra TOML lines for this [[upstream]]
};

std::string probe_toml(const std::vector<Upstream>& chain) {
  std::ostringstream toml;
  toml << "[server]\nlisten = [\"127.0.0.1:0\"]\nhostname = \"relay.test\"\n"
       << "[relay]\nconnect_timeout = \"300ms\"\ngreeting_timeout = \"2s\"\n"
       << "command_timeout = \"2s\"\n"
       << "[metrics]\nenabled = false\n";
  for (const auto& upstream : chain)
    toml << "[[upstream]]\nname = \"" << upstream.name
         << "\"\nhost = \"127.0.0.1\"\nport = " << upstream.port << "\n"
         << upstream.keys;
  return toml.str();
}

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout only
};

CommandResult run_binary(const std::string& arguments) {
  std::string command = std::string(PORTRELAY_BINARY) + " " + arguments + " 2>/dev/null";
  CommandResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof(buffer), pipe))
    result.output.append(buffer, n);
  int status = pclose(pipe);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

// Python's json module as the referee; prints "valid" or the parse error.
std::string check_json(const TempDir& dir, const std::string& json) {
  std::string file = dir.write_file("probe.json", json);
  FILE* pipe = popen(("/usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1])); "
                      "print(\"valid\")' " +
                      file + " 2>&1")
                         .c_str(),
                     "r");
  if (!pipe) return "popen failed";
  std::string output;
  char buffer[1024];
  while (std::size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  pclose(pipe);
  return output;
}

class ProbeRun : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv(kPasswordEnv, kPassword, 1);
    pki_ = tls::generate_test_pki(dir_.file("pki"));
    good_ = std::make_unique<FakeUpstream>(tls_upstream(pki_.good_cert, pki_.good_key, true));
    wrong_host_ = std::make_unique<FakeUpstream>(
        tls_upstream(pki_.wrong_host_cert, pki_.wrong_host_key, false));
    bad_auth_ = std::make_unique<FakeUpstream>(tls_upstream(pki_.good_cert, pki_.good_key, true));
    bad_auth_->set_override(
        SmtpStage::kAuth, StageAction::reply_with("535 5.7.8 Authentication credentials invalid"));
  }
  void TearDown() override { unsetenv(kPasswordEnv); }

  FakeUpstream::Config tls_upstream(const std::string& cert, const std::string& key, bool auth) {
    FakeUpstream::Config config;
    config.cert_file = cert;
    config.key_file = key;
    config.implicit_tls = true;
    if (auth) {
      config.auth_mechanisms = {"PLAIN", "LOGIN"};
      config.auth_username = kUser;
      config.auth_password = kPassword;
    }
    return config;
  }

  std::string tls_keys(bool credentials) const {
    std::string keys =
        "tls = \"implicit\"\nca_file = \"" + pki_.ca_cert + "\"\ntls_server_name = \"localhost\"\n";
    if (credentials)
      keys +=
          std::string("username = \"") + kUser + "\"\npassword_env = \"" + kPasswordEnv + "\"\n";
    return keys;
  }

  std::string full_chain_toml() const {
    return probe_toml({{"blackhole", blackhole_.port(), "tls = \"none\"\n"},
                       {"refused", refused_.port(), "tls = \"none\"\n"},
                       {"tls-auth", good_->port(), tls_keys(true)},
                       {"wrong-host", wrong_host_->port(), tls_keys(false)},
                       {"bad-auth", bad_auth_->port(), tls_keys(true)}});
  }

  TempDir dir_{"probe-test"};
  tls::GeneratedPki pki_;
  BlackholePort blackhole_;
  RefusedPort refused_;
  std::unique_ptr<FakeUpstream> good_, wrong_host_, bad_auth_;
};

TEST_F(ProbeRun, VerdictForEveryEndpointAndTheOneInUse) {
  config::Config config = config::parse_config(full_chain_toml(), "probe.toml");
  ASSERT_TRUE(config.warnings.empty()) << config.warnings.front();
  auto started = std::chrono::steady_clock::now();
  auto probes = probe::run_probes(config);
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_LT(took, 1500ms) << "endpoints must be probed concurrently";

  ASSERT_EQ(probes.size(), 5u);
  std::vector<std::string> verdicts;
  for (const auto& probe : probes) verdicts.push_back(probe::verdict(probe, 300ms));
  EXPECT_EQ(verdicts, (std::vector<std::string>{"BLOCKED (no answer in 300ms)", "REFUSED",
                                                "OK (AUTH OK)", "TLS CERT ERROR", "AUTH FAILED"}));
  EXPECT_EQ(probe::endpoint_in_use(probes), 2u);
  for (std::size_t i = 0; i < probes.size(); ++i) EXPECT_EQ(probes[i].endpoint.index, i);

  const auto& blocked = probes[0];
  EXPECT_EQ(blocked.reason, FailureReason::Timeout);
  EXPECT_GE(blocked.elapsed_ms, 300);
  EXPECT_LT(blocked.elapsed_ms, 1000);
  EXPECT_LT(blocked.trace.tcp_ms, 0) << "TCP never connected";

  EXPECT_EQ(probes[1].reason, FailureReason::Refused);

  const auto& good = probes[2];
  EXPECT_TRUE(good.ok);
  EXPECT_FALSE(good.reason.has_value());
  EXPECT_EQ(good.trace.tls_version.rfind("TLSv1.", 0), 0u) << good.trace.tls_version;
  EXPECT_FALSE(good.trace.tls_cipher.empty());
  EXPECT_EQ(good.trace.greeting, "220 fake.upstream ESMTP");
  EXPECT_TRUE(good.trace.authenticated);
  EXPECT_NE(
      std::find(good.trace.extensions.begin(), good.trace.extensions.end(), "AUTH PLAIN LOGIN"),
      good.trace.extensions.end())
      << ::testing::PrintToString(good.trace.extensions);
  EXPECT_GE(good.trace.tcp_ms, 0);
  EXPECT_GE(good.trace.tls_ms, good.trace.tcp_ms);
  EXPECT_GE(good.trace.ready_ms, good.trace.tls_ms);
  EXPECT_EQ(good.trace.addresses,
            std::vector<std::string>{"127.0.0.1:" + std::to_string(good_->port())});

  EXPECT_EQ(probes[3].reason, FailureReason::TlsVerify);
  EXPECT_TRUE(probes[3].trace.greeting.empty());
  EXPECT_EQ(probes[4].reason, FailureReason::AuthFailed);
  EXPECT_EQ(probes[4].detail.find(kPassword), std::string::npos) << "secret in detail";

  // What the upstreams saw: one good login, one refused; no mail sent.
  auto good_logins = good_->auth_attempts();
  ASSERT_EQ(good_logins.size(), 1u);
  EXPECT_TRUE(good_logins[0].success);
  EXPECT_EQ(good_logins[0].username, kUser);
  EXPECT_TRUE(good_logins[0].tls);
  ASSERT_EQ(bad_auth_->auth_attempts().size(), 1u);
  EXPECT_TRUE(good_->transactions().empty());
  EXPECT_FALSE(wrong_host_->tls_failures().empty());
}

TEST_F(ProbeRun, BinaryPrintsTableAndExitsZero) {
  std::string config_file = dir_.write_file("probe.toml", full_chain_toml());

  CommandResult table = run_binary("probe --config " + config_file);
  EXPECT_EQ(table.exit_code, 0) << table.output;
  std::string in_use = "tls-auth:" + std::to_string(good_->port());
  EXPECT_NE(table.output.find("The relay would use now: " + in_use + " (endpoint 3 of 5)"),
            std::string::npos)
      << table.output;
  EXPECT_NE(table.output.find("BLOCKED (no answer in 300ms)"), std::string::npos);
  EXPECT_NE(table.output.find("TLS CERT ERROR"), std::string::npos);
  EXPECT_NE(table.output.find("AUTH FAILED"), std::string::npos);
  EXPECT_EQ(table.output.find(kPassword), std::string::npos) << "secret in output";
}

TEST_F(ProbeRun, BinaryPrintsJsonAndExitsZero) {
  std::string config_file = dir_.write_file("probe.toml", full_chain_toml());
  std::string in_use = "tls-auth:" + std::to_string(good_->port());
  CommandResult json = run_binary("probe --json --config " + config_file);
  EXPECT_EQ(json.exit_code, 0) << json.output;
  EXPECT_EQ(check_json(dir_, json.output), "valid\n") << json.output;
  EXPECT_NE(json.output.find("\"in_use\":\"" + in_use + "\""), std::string::npos) << json.output;
  EXPECT_NE(json.output.find("\"verdict\":\"REFUSED\""), std::string::npos);
}

TEST_F(ProbeRun, BinaryExitsTwoWhenNothingIsUsable) {
  std::string config_file =
      dir_.write_file("dead.toml", probe_toml({{"blackhole", blackhole_.port(), "tls = \"none\"\n"},
                                               {"refused", refused_.port(), "tls = \"none\"\n"}}));
  CommandResult table = run_binary("probe --config " + config_file);
  EXPECT_EQ(table.exit_code, 2) << table.output;
  EXPECT_NE(table.output.find("No endpoint is usable: mail would be deferred (451 4.4.1)."),
            std::string::npos)
      << table.output;
}

TEST_F(ProbeRun, BinaryJsonExitsTwoWhenNothingIsUsable) {
  std::string config_file =
      dir_.write_file("dead.toml", probe_toml({{"blackhole", blackhole_.port(), "tls = \"none\"\n"},
                                               {"refused", refused_.port(), "tls = \"none\"\n"}}));
  CommandResult json = run_binary("probe --json --config " + config_file);
  EXPECT_EQ(json.exit_code, 2) << json.output;
  EXPECT_EQ(check_json(dir_, json.output), "valid\n") << json.output;
  EXPECT_NE(json.output.find("\"in_use\":null"), std::string::npos) << json.output;
}

TEST_F(ProbeRun, BinaryExitsOneOnABadConfig) {
  std::string config_file = dir_.write_file("bad.toml", "[relay]\nstagger = \"1ms\"\n");
  EXPECT_EQ(run_binary("probe --config " + config_file).exit_code, 1);
}

}  // namespace
}  // namespace portrelay::test
