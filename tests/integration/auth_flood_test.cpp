// An AUTH flood on a public submission listener must not stop local applications from
// relaying. Password hashing (scrypt, deliberately slow) used to share libuv's 4-thread
// pool with getaddrinfo: 60 connections sending wrong AUTH PLAIN kept it busy long enough
// that resolving the upstream's name waited past connect_timeout, and messages got 451.
#include <atomic>
#include <thread>

#include "portrelay/config/config.hpp"
#include "portrelay/net/dns_cache.hpp"
#include "portrelay/server/password_hash.hpp"
#include "portrelay/demo/test_pki.hpp"
#include "relay_harness.hpp"
#include "support/base64.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::test {
namespace {

TEST(AuthFlood, LegitimateMessagesRelayWhileWrongPasswordsFloodTheAuthListener) {
  TempDir dir("portrelay-auth-flood");
  auto pki = tls::generate_test_pki(dir.path());
  // The production cost (N = 2^15): each check takes tens of milliseconds.
  const std::string users =
      dir.write_file("users", "app:" + server::hash_password("right-password") + "\n");
  FakeUpstream upstream;
  const std::string toml =
      "[server]\nlisten = [\"127.0.0.1:0\", \"127.0.0.2:0\"]\nhostname = \"relay.test\"\n"
      "tls_cert = \"" +
      pki.good_cert + "\"\ntls_key = \"" + pki.good_key + "\"\nusers_file = \"" + users +
      "\"\nrequire_auth = [\"127.0.0.2:0\"]\nauth_failure_delay = \"10ms\"\n"
      "[relay]\nconnect_timeout = \"300ms\"\ngreeting_timeout = \"1s\"\n"
      // Every message opens a fresh upstream connection, so it resolves the name again.
      "pool_max_per_endpoint = 0\n"
      "[metrics]\nenabled = false\n"
      "[[upstream]]\nname = \"up\"\nhost = \"localhost\"\ntls = \"none\"\nport = " +
      std::to_string(upstream.port()) + "\n";
  net::DnsCache::shared().clear();
  RelayUnderTest relay(toml);
  const auto ports = relay.daemon().listener_ports();
  ASSERT_EQ(ports.size(), 2u);

  std::atomic<bool> stop{false};
  std::atomic<int> flood_replies{0};
  std::vector<std::thread> flooders;
  for (int i = 0; i < 60; ++i) {
    flooders.emplace_back([&, i]() {
      const std::string wrong =
          "AUTH PLAIN " + base64_encode(std::string("\0app\0wrong", 10) + std::to_string(i));
      while (!stop) {
        try {
          SmtpTestClient client(10s);
          client.connect("127.0.0.2", ports[1]);
          client.read_reply();
          client.command("EHLO flood.test");
          client.starttls({pki.ca_cert, "localhost"});
          client.command("EHLO flood.test");
          while (!stop) {
            int code = client.command(wrong).code;
            ++flood_replies;
            if (code != 535 && code != 454) break;  // 421 after too many failures
          }
        } catch (const SmtpTestError&) {
          // Closed by the relay (421): connect again.
        }
      }
    });
  }
  // Let the flood build up before the first message.
  std::this_thread::sleep_for(500ms);
  std::vector<int> codes;
  for (int i = 0; i < 5; ++i) {
    SmtpTestClient app(10s);
    app.connect("127.0.0.1", ports[0]);
    EXPECT_EQ(app.read_reply().code, 220);
    EXPECT_EQ(app.command("EHLO app.test").code, 250);
    const auto started = std::chrono::steady_clock::now();
    SmtpReply reply =
        app.send_message("app@example.test", {"rcpt@example.test"},
                         "Subject: during the flood " + std::to_string(i) + "\r\n\r\nhello\r\n");
    EXPECT_EQ(reply.code, 250) << "message " << i << ": " << reply.raw;
    EXPECT_LT(std::chrono::steady_clock::now() - started, 2s) << "message " << i;
    codes.push_back(reply.code);
    net::DnsCache::shared().clear();  // make the next message resolve under the flood too
  }
  stop = true;
  for (auto& thread : flooders) thread.join();
  EXPECT_GT(flood_replies.load(), 60) << "the flood did not run";
  EXPECT_GT(relay.metric("portrelay_auth_failures_total"), 0);
  EXPECT_EQ(upstream.transactions().size(), 5u);
}

}  // namespace
}  // namespace portrelay::test
