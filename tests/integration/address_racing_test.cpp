// Happy Eyeballs between one host's addresses (RFC 8305 section 5): an endpoint whose
// first address silently drops SYNs must still be ready after one stagger, on the next
// address, not after connect_timeout.
#include <gtest/gtest.h>

#include <chrono>

#include "portrelay/app/daemon_thread.hpp"
#include "portrelay/base/log.hpp"
#include "portrelay/config/config.hpp"
#include "portrelay/demo/blocked_ports.hpp"
#include "portrelay/probe/probe.hpp"
#include "support/fake_upstream.hpp"
#include "support/smtp_test_client.hpp"

namespace portrelay {
namespace {

using namespace std::chrono_literals;

std::string config_for(std::uint16_t port, const std::string& addresses) {
  return "[server]\nlisten = [\"127.0.0.1:0\"]\nhostname = \"relay.test\"\n"
         "[relay]\nconnect_timeout = \"5s\"\nstagger = \"100ms\"\n"
         "[metrics]\nenabled = false\n"
         "[[upstream]]\nname = \"dual\"\nhost = \"localhost\"\ntls = \"none\"\n"
         "port = " +
         std::to_string(port) + "\naddresses = " + addresses + "\n";
}

class AddressRacing : public ::testing::Test {
 protected:
  void SetUp() override { log::set_enabled(false); }
  void TearDown() override { log::set_enabled(true); }
};

TEST_F(AddressRacing, SilentFirstAddressCostsOneStaggerNotTheConnectTimeout) {
  test::FakeUpstream upstream;  // 127.0.0.1:P
  std::unique_ptr<demo::BlackholePort> silent;
  try {
    silent = std::make_unique<demo::BlackholePort>("::1", upstream.port());  // [::1]:P drops SYNs
  } catch (const std::exception& error) {
    GTEST_SKIP() << "cannot black-hole [::1]:" << upstream.port() << ": " << error.what();
  }
  auto config =
      config::parse_config(config_for(upstream.port(), R"(["::1", "127.0.0.1"])"), "t.toml");
  ASSERT_EQ(config.chain.at(0).addresses.size(), 2u);

  auto probes = probe::run_probes(config);
  ASSERT_EQ(probes.size(), 1u);
  EXPECT_TRUE(probes[0].ok) << probes[0].detail;
  EXPECT_EQ(probes[0].trace.connected_address, "127.0.0.1:" + std::to_string(upstream.port()));
  EXPECT_GE(probes[0].trace.tcp_ms, 90.0);    // waited one stagger on [::1]
  EXPECT_LT(probes[0].trace.tcp_ms, 2000.0);  // and not the 5 s connect timeout

  DaemonThread relay(config);
  relay.start();
  test::SmtpTestClient client;
  client.connect("127.0.0.1", relay.listener_ports().at(0));
  ASSERT_EQ(client.read_reply().code, 220);
  ASSERT_EQ(client.command("EHLO client.test").code, 250);
  auto started = std::chrono::steady_clock::now();
  // Date and Message-ID present: add_missing_headers (on by default) leaves it byte for byte.
  const std::string message =
      "Subject: x\r\nDate: Sun, 6 Dec 2026 21:00:00 +0000\r\nMessage-ID: <1@relay.test>\r\n\r\n"
      "body\r\n";
  auto reply = client.send_message("a@relay.test", {"b@example.test"}, message);
  auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(reply.code, 250) << reply.text;
  EXPECT_LT(elapsed, 2s);
  ASSERT_TRUE(upstream.wait_for_transactions(1, 5s));
  EXPECT_EQ(upstream.transactions().at(0).content, message);
  relay.stop();
}

TEST_F(AddressRacing, AllAddressesRefusedFailsFastWithRefused) {
  demo::RefusedPort refused_v4("127.0.0.1");
  std::unique_ptr<demo::RefusedPort> refused_v6;
  try {
    refused_v6 = std::make_unique<demo::RefusedPort>("::1", refused_v4.port());
  } catch (const std::exception& error) {
    GTEST_SKIP() << "no IPv6 loopback: " << error.what();
  }
  auto config =
      config::parse_config(config_for(refused_v4.port(), R"(["::1", "127.0.0.1"])"), "t.toml");
  auto probes = probe::run_probes(config);
  ASSERT_EQ(probes.size(), 1u);
  EXPECT_FALSE(probes[0].ok);
  ASSERT_TRUE(probes[0].reason.has_value());
  EXPECT_EQ(*probes[0].reason, FailureReason::Refused);
  EXPECT_LT(probes[0].elapsed_ms, 1000.0);  // both refused at once: no stagger wait
}

TEST(AddressesConfig, RejectsSomethingThatIsNotAnIpAddress) {
  try {
    config::parse_config(config_for(25, R"(["127.0.0.1", "mail.example.com"])"), "t.toml");
    FAIL() << "expected a ConfigError";
  } catch (const config::ConfigError& error) {
    EXPECT_EQ(error.line(), 14);
    EXPECT_NE(std::string(error.what()).find("\"mail.example.com\" is not an IP address"),
              std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace portrelay
