// [[route]], [aliases] at RCPT and allowed_senders over real sockets: which upstream a
// message reaches, failover inside a route, and what is refused before any upstream is asked.
#include "portrelay/demo/test_pki.hpp"
#include "portrelay/server/password_hash.hpp"
#include "relay_harness.hpp"
#include "support/base64.hpp"
#include "support/blocked_ports.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::test {
namespace {

std::string route(const std::string& name, const std::string& senders,
                  const std::string& upstreams) {
  return "[[route]]\nname = \"" + name + "\"\nsenders = [" + senders + "]\nupstreams = [" +
         upstreams + "]\n";
}

TEST(RelayRoutes, FirstMatchingRouteCarriesTheMessageOthersTakeTheWholeChain) {
  FakeUpstream first;
  FakeUpstream second;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("first", first.port()),
                        plain_upstream("second", second.port()),
                        route("shop", "\"*@shop.example.test\"", "\"second\"")};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply =
      client->send_message("orders@shop.example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via second:"), std::string::npos) << reply.raw;
  reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via first:"), std::string::npos) << reply.raw;
  ASSERT_TRUE(second.wait_for_transactions(1, 2s));
  ASSERT_TRUE(first.wait_for_transactions(1, 2s));
  EXPECT_EQ(second.transactions().at(0).mail_from, "orders@shop.example.test");
  EXPECT_EQ(first.transactions().at(0).mail_from, "a@example.test");
  const std::string metrics = relay.metrics_text();
  EXPECT_EQ(
      metric_value(metrics, "portrelay_messages_total", {{"result", "relayed"}, {"route", "shop"}}),
      1);
  EXPECT_EQ(metric_value(metrics, "portrelay_messages_total",
                         {{"result", "relayed"}, {"route", "default"}}),
            1);
}

TEST(RelayRoutes, FailoverStaysInsideTheRouteInItsOwnOrder) {
  FakeUpstream first;
  RefusedPort dead;
  FakeUpstream third;
  RelaySettings settings;
  // The route's order is dead, then third (not the chain's); "first", healthy and first in
  // the chain, is not on the route and must never see the message.
  settings.upstreams = {plain_upstream("first", first.port()),
                        plain_upstream("third", third.port()), plain_upstream("dead", dead.port()),
                        route("billing", "\"billing@example.test\"", "\"dead\", \"third\"")};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply =
      client->send_message("billing@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via third:"), std::string::npos) << reply.raw;
  ASSERT_TRUE(third.wait_for_transactions(1, 2s));
  EXPECT_EQ(first.transactions().size(), 0u);
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_failures_total", {{"upstream", "dead"}}), 1);
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_attempts_total", {{"upstream", "first"}}), 0);
}

TEST(RelayRoutes, ARouteWithNothingReachableDefersInsteadOfUsingOtherUpstreams) {
  FakeUpstream first;
  RefusedPort dead;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("first", first.port()), plain_upstream("dead", dead.port()),
                        route("only-dead", "\"*@shop.example.test\"", "\"dead\"")};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->command("MAIL FROM:<a@shop.example.test>");
  EXPECT_EQ(reply.code / 100, 4) << reply.raw;
  EXPECT_EQ(first.transactions().size(), 0u);
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_attempts_total", {{"upstream", "first"}}), 0);
}

TEST(RelayRoutes, RequireRouteRefusesUnroutedSendersAtMail) {
  FakeUpstream first;
  RelaySettings settings;
  settings.relay_extra = "require_route = true";
  settings.upstreams = {plain_upstream("first", first.port()),
                        route("shop", "\"*@shop.example.test\"", "\"first\"")};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->command("MAIL FROM:<a@example.test>");
  EXPECT_EQ(reply.code, 550) << reply.raw;
  EXPECT_NE(reply.raw.find("5.7.1"), std::string::npos) << reply.raw;
  reply = client->send_message("a@shop.example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(first.wait_for_transactions(1, 2s));
  EXPECT_EQ(first.transactions().size(), 1u);
  EXPECT_EQ(relay.metric("portrelay_messages_total", {{"result", "rejected"}}), 1);
}

TEST(RelayAliases, AnUnmappedLocalRecipientIsRefusedAtRcptAndNeverSentUpstream) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("up", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  EXPECT_EQ(client->command("MAIL FROM:<a@example.test>").code, 250);
  for (const char* local : {"RCPT TO:<root@relay.test>", "RCPT TO:<www-data@localhost>",
                            "RCPT TO:<Root@RELAY.test>", "RCPT TO:<root>"}) {
    SmtpReply reply = client->command(local);
    EXPECT_EQ(reply.code, 550) << local << ": " << reply.raw;
    EXPECT_NE(reply.raw.find("5.1.1"), std::string::npos) << reply.raw;
  }
  EXPECT_EQ(client->command("RCPT TO:<b@example.test>").code, 250);
  EXPECT_EQ(client->command("RSET").code, 250);
  client->command("QUIT");
  relay.stop();
  for (const auto& line : upstream.commands(0))
    EXPECT_EQ(line.find("root"), std::string::npos) << line;
}

TEST(RelayAliases, ALocalRecipientGoesToEveryTargetOnce) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("up", upstream.port()),
                        "[aliases]\nroot = [\"ops@example.test\", \"admin\"]\n"
                        "admin = \"boss@example.test\"\npostmaster = \"root\"\n"};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->send_message(
      "cron@relay.test", {"root@relay.test", "postmaster@relay.test", "boss@example.test"},
      sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream.transactions().at(0).rcpt_to,
            (std::vector<std::string>{"ops@example.test", "boss@example.test"}));
}

TEST(RelayAllowedSenders, OtherSendersAreRefusedAtMail) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.server_extra = "allowed_senders = [\"*@example.test\"]";
  settings.upstreams = {plain_upstream("up", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->command("MAIL FROM:<a@evil.test>");
  EXPECT_EQ(reply.code, 550) << reply.raw;
  EXPECT_NE(reply.raw.find("5.7.1"), std::string::npos) << reply.raw;
  reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_attempts_total", {{"upstream", "up"}}), 1);
}

TEST(RelayRoutes, AQueuedMessageKeepsItsRouteAndTakesTheDefaultOnceTheRouteIsGone) {
  TempDir spool_dir("routes-spool");
  FakeUpstream first;
  RefusedPort second_down;
  RelaySettings settings;
  settings.relay_extra = "mode = \"spool\"";
  settings.spool =
      "dir = \"" + spool_dir.path() + "/spool\"\nretry_min = \"1s\"\nretry_max = \"1s\"";
  settings.upstreams = {plain_upstream("first", first.port()),
                        plain_upstream("second", second_down.port()),
                        route("shop", "\"*@shop.example.test\"", "\"second\"")};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply =
      client->send_message("a@shop.example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  // Its route's only upstream refuses: it waits, and "first" never sees it.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(first.transactions().size(), 0u);
  // A reload without the route: the queued message takes the default route.
  RelaySettings without = settings;
  without.upstreams.pop_back();
  ASSERT_TRUE(relay.reload(without));
  relay.daemon().retry_all();
  ASSERT_TRUE(first.wait_for_transactions(1, 10s));
  EXPECT_EQ(first.transactions().at(0).mail_from, "a@shop.example.test");
}

}  // namespace
}  // namespace portrelay::test

namespace portrelay::test {
namespace {

// A users_file line's own senders replace [server] allowed_senders for that user; a user
// without a list, and a client that did not authenticate, get the server's.
TEST(RelayAllowedSenders, AUsersOwnListReplacesTheServers) {
  TempDir dir("portrelay-user-senders");
  const tls::GeneratedPki pki = tls::generate_test_pki(dir.path());
  const std::string hash = server::hash_password("secret", {10, 8, 1});
  const std::string users =
      dir.write_file("users", "shop:" + hash + ":*@shop.example.test\nplain:" + hash + "\n");
  FakeUpstream upstream;
  RelaySettings settings;
  settings.server_extra = "tls_cert = \"" + pki.good_cert + "\"\ntls_key = \"" + pki.good_key +
                          "\"\nusers_file = \"" + users +
                          "\"\nallowed_senders = [\"*@example.test\"]";
  settings.upstreams = {plain_upstream("up", upstream.port())};
  RelayUnderTest relay(settings);

  auto login = [&](const std::string& user) {
    auto client = relay.client();
    client->starttls({pki.ca_cert, "localhost"});
    EXPECT_EQ(client->command("EHLO app.test").code, 250);
    const std::string plain = std::string("\0", 1) + user + std::string("\0", 1) + "secret";
    EXPECT_EQ(client->command("AUTH PLAIN " + base64_encode(plain)).code, 235);
    return client;
  };
  auto shop = login("shop");
  EXPECT_EQ(shop->command("MAIL FROM:<a@example.test>").code, 550);
  EXPECT_EQ(shop->command("MAIL FROM:<a@shop.example.test>").code, 250);
  auto plain = login("plain");
  EXPECT_EQ(plain->command("MAIL FROM:<a@shop.example.test>").code, 550);
  EXPECT_EQ(plain->command("MAIL FROM:<a@example.test>").code, 250);
  auto anonymous = relay.client();
  EXPECT_EQ(anonymous->command("MAIL FROM:<a@shop.example.test>").code, 550);
}

}  // namespace
}  // namespace portrelay::test
