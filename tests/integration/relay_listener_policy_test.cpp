// require_auth per listener: one listener for local applications without AUTH, one that
// demands AUTH (as a submission port for other hosts would), in the same relay.
#include <gtest/gtest.h>

#include "portrelay/app/daemon_thread.hpp"
#include "portrelay/base/log.hpp"
#include "portrelay/config/config.hpp"
#include "portrelay/demo/test_pki.hpp"
#include "portrelay/server/password_hash.hpp"
#include "support/base64.hpp"
#include "support/fake_upstream.hpp"
#include "support/smtp_test_client.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::test {
namespace {

using namespace std::chrono_literals;

class RelayListenerPolicy : public ::testing::Test {
 protected:
  void SetUp() override {
    log::set_enabled(false);
    pki_ = tls::generate_test_pki(dir_.path());
    users_ = dir_.write_file("users", "app:" + server::hash_password("secret", {10, 8, 1}) + "\n");
  }
  void TearDown() override { log::set_enabled(true); }

  std::string toml(const std::string& require_auth) const {
    return "[server]\nlisten = [\"127.0.0.1:0\", \"127.0.0.2:0\"]\nhostname = \"relay.test\"\n"
           "tls_cert = \"" +
           pki_.good_cert + "\"\ntls_key = \"" + pki_.good_key +
           "\"\n"
           "users_file = \"" +
           users_ + "\"\nrequire_auth = " + require_auth +
           "\n"
           "[metrics]\nenabled = false\n"
           "[[upstream]]\nname = \"a\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nport = " +
           std::to_string(upstream_.port()) + "\n";
  }

  TempDir dir_{"portrelay-listener-policy"};
  tls::GeneratedPki pki_;
  std::string users_;
  FakeUpstream upstream_;
};

TEST_F(RelayListenerPolicy, OnlyTheListedListenerRequiresAuth) {
  DaemonThread relay(config::parse_config(toml("[\"127.0.0.2:0\"]"), "t.toml"));
  relay.start();
  auto ports = relay.listener_ports();
  ASSERT_EQ(ports.size(), 2u);

  SmtpTestClient open(5s);
  open.connect("127.0.0.1", ports[0]);
  ASSERT_EQ(open.read_reply().code, 220);
  ASSERT_EQ(open.command("EHLO app.test").code, 250);
  EXPECT_EQ(open.send_message("a@relay.test", {"b@example.test"}, "Subject: 1\r\n\r\nx\r\n").code,
            250);

  SmtpTestClient guarded(5s);
  guarded.connect("127.0.0.2", ports[1]);
  ASSERT_EQ(guarded.read_reply().code, 220);
  ASSERT_EQ(guarded.command("EHLO app.test").code, 250);
  guarded.starttls({pki_.ca_cert, "localhost"});
  ASSERT_EQ(guarded.command("EHLO app.test").code, 250);
  SmtpReply refused = guarded.command("MAIL FROM:<a@relay.test>");
  EXPECT_EQ(refused.code, 530) << refused.raw;
  EXPECT_EQ(guarded.command("AUTH PLAIN " + base64_encode(std::string("\0app\0secret", 11))).code,
            235);
  EXPECT_EQ(
      guarded.send_message("a@relay.test", {"b@example.test"}, "Subject: 2\r\n\r\ny\r\n").code,
      250);
  ASSERT_TRUE(upstream_.wait_for_transactions(2, 5s));
  relay.stop();
}

TEST(RelayListenerPolicyConfig, ListedAddressMustBeAListener) {
  const std::string head = "[server]\nlisten = [\"127.0.0.1:2525\"]\n";
  try {
    config::parse_config(
        head + "require_auth = [\"127.0.0.1:587\"]\n[[upstream]]\nhost = \"a\"\nport = 25\n",
        "t.toml");
    FAIL() << "expected a ConfigError";
  } catch (const config::ConfigError& error) {
    EXPECT_EQ(error.line(), 3);
    EXPECT_NE(std::string(error.what()).find("is not one of the addresses in listen"),
              std::string::npos)
        << error.what();
  }
  try {
    config::parse_config(head + "require_auth = \"yes\"\n[[upstream]]\nhost = \"a\"\nport = 25\n",
                         "t.toml");
    FAIL() << "expected a ConfigError";
  } catch (const config::ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("expected true, false or a list of listen addresses"),
              std::string::npos)
        << error.what();
  }
}

TEST(RelayListenerPolicyConfig, PublicListenerIsFineWhenItRequiresAuth) {
  // Needs TLS and a users file; the config loader checks those files exist.
  TempDir dir("portrelay-listener-policy-config");
  auto pki = tls::generate_test_pki(dir.path());
  std::string users =
      dir.write_file("users", "app:" + server::hash_password("x", {10, 8, 1}) + "\n");
  std::string common = "tls_cert = \"" + pki.good_cert + "\"\ntls_key = \"" + pki.good_key +
                       "\"\nusers_file = \"" + users + "\"\n";
  std::string upstream = "[[upstream]]\nhost = \"a\"\nport = 25\n";
  auto config = config::parse_config("[server]\nlisten = [\"127.0.0.1:2525\", \"0.0.0.0:587\"]\n" +
                                         common + "require_auth = [\"0.0.0.0:587\"]\n" + upstream,
                                     "t.toml");
  EXPECT_TRUE(config.server.requires_auth(*config::parse_listen_address("0.0.0.0:587")));
  EXPECT_FALSE(config.server.requires_auth(*config::parse_listen_address("127.0.0.1:2525")));
  EXPECT_FALSE(config.server.allow_explicit);
  // The same public listener without AUTH is an open relay: refused.
  EXPECT_THROW(config::parse_config("[server]\nlisten = [\"127.0.0.1:2525\", \"0.0.0.0:587\"]\n" +
                                        common + "require_auth = [\"127.0.0.1:2525\"]\n" + upstream,
                                    "t.toml"),
               config::ConfigError);
}

// The open-relay guard looks at the union of `allow`: each of these lists admits every IPv4
// client of a listener on 0.0.0.0 without AUTH, so the relay must refuse to start. If it
// started, a client on 127.0.0.1 would be served: shown here over a real socket.
TEST(RelayOpenRelayGuard, AllowListsAdmittingAllOfIpv4AreRefused) {
  log::set_enabled(false);
  FakeUpstream upstream;
  for (std::string allow : {R"(["::ffff:0.0.0.0/96"])", R"(["0.0.0.0/1", "128.0.0.0/1"])",
                            R"(["10.0.0.0/8", "::/1"])"}) {
    SCOPED_TRACE(allow);
    const std::string toml =
        "[server]\nlisten = [\"0.0.0.0:0\"]\nhostname = \"relay.test\"\nallow = " + allow +
        "\n[metrics]\nenabled = false\n"
        "[[upstream]]\nname = \"a\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nport = " +
        std::to_string(upstream.port()) + "\n";
    std::unique_ptr<DaemonThread> daemon;
    try {
      daemon = std::make_unique<DaemonThread>(config::parse_config(toml, "open.toml"));
    } catch (const config::ConfigError& error) {
      EXPECT_NE(std::string(error.what()).find("open relay"), std::string::npos) << error.what();
      continue;
    }
    daemon->start();
    SmtpTestClient client(5s);
    client.connect("127.0.0.1", daemon->listener_ports().at(0));
    SmtpReply greeting = client.read_reply();
    ADD_FAILURE() << "the relay started as an open relay; a client got: " << greeting.raw;
    daemon->stop(1s);
  }
  log::set_enabled(true);
}

}  // namespace
}  // namespace portrelay::test
