// [server] workers: several event loops take clients on the same listening address
// (SO_REUSEPORT) and relay them, each with its own selector and pool, while what is per
// daemon stays per daemon: the endpoints' health (one table for every loop) and the session
// limits. Which loop gets a connection is the kernel's choice (a hash of the addresses), so
// the tests connect until both loops have had clients and read the daemon's own count of
// sessions per loop.
#include "relay_harness.hpp"
#include "support/blocked_ports.hpp"

namespace portrelay::test {
namespace {

// Sessions each loop has taken so far (the census counts them with several loops).
std::vector<std::size_t> sessions_per_loop(RelayUnderTest& relay) {
  std::vector<std::size_t> counts;
  EXPECT_TRUE(relay.daemon().run_on_loop([&](Daemon& daemon) {
    for (std::size_t loop = 0; loop < daemon.loops(); ++loop)
      counts.push_back(daemon.session_census().started(loop));
  }));
  return counts;
}

// A black-holed first endpoint is learned once, by the loop whose message raced it, and
// every later message, on either loop, goes straight to the second endpoint: with a health
// table per loop, the other loop's first message would race the black hole again (a second
// connect attempt and a second stagger).
TEST(Workers, AFailureLearnedOnOneLoopIsKnownOnTheOther) {
  BlackholePort blackhole;
  FakeUpstream working;
  RelaySettings settings;
  settings.server_extra = "workers = 2";
  settings.connect_timeout = "5s";
  settings.relay_extra = "stagger = \"1s\"\ncooldown = \"10m\"\ncooldown_max = \"10m\"";
  settings.upstreams = {plain_upstream("hole", blackhole.port()),
                        plain_upstream("good", working.port())};
  RelayUnderTest relay(settings);
  ASSERT_EQ(sessions_per_loop(relay).size(), 2u);

  auto first = relay.client();
  SmtpReply reply = first->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  first->command("QUIT");
  const std::vector<std::size_t> after_first = sessions_per_loop(relay);
  const std::size_t first_loop = after_first[0] == 1 ? 0 : 1;
  ASSERT_EQ(after_first[first_loop], 1u);
  const std::size_t other_loop = 1 - first_loop;

  // New connections until the other loop has relayed two messages (bounded: the kernel's
  // hash sends about half of them there).
  std::size_t messages = 1;
  for (int attempt = 0; attempt < 64; ++attempt) {
    auto client = relay.client();
    reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
    ASSERT_EQ(reply.code, 250) << reply.raw;
    EXPECT_NE(reply.text.find("relayed via good:"), std::string::npos) << reply.raw;
    client->command("QUIT");
    ++messages;
    if (sessions_per_loop(relay)[other_loop] >= 2) break;
  }
  ASSERT_GE(sessions_per_loop(relay)[other_loop], 2u) << "the kernel never chose the other loop";

  ASSERT_TRUE(working.wait_for_transactions(messages, 5s));
  const std::string metrics = relay.metrics_text();
  // One race ever touched the black hole: the first message's.
  EXPECT_EQ(
      metric_value(metrics, "portrelay_upstream_connect_attempts_total", {{"upstream", "hole"}}),
      1);
  EXPECT_EQ(
      metric_value(metrics, "portrelay_upstream_connect_cancelled_total", {{"upstream", "hole"}}),
      1);
  EXPECT_EQ(metric_value(metrics, "portrelay_messages_total", {{"result", "relayed"}}),
            static_cast<double>(messages));
  relay.stop();
  EXPECT_EQ(relay.daemon().loop_close_status(), 0);
}

// A throttling reply learned on one loop pauses the upstream on every loop: the other loop
// does not send the provider another message to learn it (with a gate per loop alone, its
// first message would go to the throttling port again).
TEST(Workers, AThrottleLearnedOnOneLoopPausesTheUpstreamOnTheOther) {
  FakeUpstream throttling;
  FakeUpstream backup;
  throttling.set_override(
      SmtpStage::kMail,
      StageAction::reply_with("454 Throttling failure: Maximum sending rate exceeded."));
  RelaySettings settings;
  settings.server_extra = "workers = 2";
  settings.upstreams = {plain_upstream("ses", throttling.port()),
                        plain_upstream("backup", backup.port())};
  RelayUnderTest relay(settings);

  auto first = relay.client();
  SmtpReply reply = first->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via backup:"), std::string::npos) << reply.raw;
  first->command("QUIT");
  const std::vector<std::size_t> after_first = sessions_per_loop(relay);
  const std::size_t other_loop = after_first[0] == 1 ? 1 : 0;

  std::size_t messages = 1;
  for (int attempt = 0; attempt < 64; ++attempt) {
    auto client = relay.client();
    reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
    ASSERT_EQ(reply.code, 250) << reply.raw;
    EXPECT_NE(reply.text.find("relayed via backup:"), std::string::npos) << reply.raw;
    client->command("QUIT");
    ++messages;
    if (sessions_per_loop(relay)[other_loop] >= 2) break;
  }
  ASSERT_GE(sessions_per_loop(relay)[other_loop], 2u) << "the kernel never chose the other loop";
  ASSERT_TRUE(backup.wait_for_transactions(messages, 5s));
  EXPECT_EQ(throttling.connection_count(), 1u);
  EXPECT_EQ(relay.metric("portrelay_upstream_throttled_total",
                         {{"upstream", "ses"}, {"kind", "throttle"}}),
            1);
  relay.stop();
  EXPECT_EQ(relay.daemon().loop_close_status(), 0);
}

// Each loop has a pool of its own; the pool gauge is their sum: after messages on both
// loops every upstream connection waits idle in one of the two pools, and the gauge counts
// them all (with one loop's report alone it would say 1).
TEST(Workers, ThePoolGaugeCountsEveryLoopsIdleConnections) {
  FakeUpstream working;
  RelaySettings settings;
  settings.server_extra = "workers = 2";
  settings.upstreams = {plain_upstream("good", working.port())};
  RelayUnderTest relay(settings);
  for (int attempt = 0; attempt < 64; ++attempt) {
    auto client = relay.client();
    SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
    ASSERT_EQ(reply.code, 250) << reply.raw;
    client->command("QUIT");
    const auto counts = sessions_per_loop(relay);
    if (counts[0] >= 1 && counts[1] >= 1) break;
  }
  ASSERT_EQ(working.connection_count(), 2u) << "one pooled connection per loop";
  EXPECT_EQ(relay.metric("portrelay_upstream_pool_idle_connections", {{"upstream", "good"}}), 2);
  relay.stop();
  EXPECT_EQ(relay.daemon().loop_close_status(), 0);
}

// max_sessions bounds the daemon, not each loop: with four sessions open (engaged, so none
// may be shed) the fifth client is refused whichever loop the kernel gives it.
TEST(Workers, MaxSessionsCountsEveryLoop) {
  FakeUpstream working;
  RelaySettings settings;
  settings.server_extra = "workers = 2\nmax_sessions = 4";
  settings.upstreams = {plain_upstream("good", working.port())};
  RelayUnderTest relay(settings);

  std::vector<std::unique_ptr<SmtpTestClient>> open;
  for (int i = 0; i < 4; ++i) {
    open.push_back(relay.client());
    EXPECT_EQ(open.back()->command("MAIL FROM:<a@example.test>").code, 250);
  }
  const std::vector<std::size_t> counts = sessions_per_loop(relay);
  EXPECT_EQ(counts[0] + counts[1], 4u);

  SmtpTestClient fifth;
  fifth.connect("127.0.0.1", relay.port());
  SmtpReply greeting = fifth.read_reply();
  EXPECT_EQ(greeting.code, 421) << greeting.raw;
  // Counted right after the 421 is written, on whichever loop's thread refused it.
  double refused = 0;
  for (int attempt = 0; attempt < 100 && refused < 1; ++attempt) {
    refused = relay.metric("portrelay_client_sessions_refused_total", {{"reason", "max_sessions"}});
    if (refused < 1) std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(refused, 1);

  // A slot freed on one loop is free for the other: after one QUIT a client gets in.
  open.front()->command("QUIT");
  open.front()->closed();
  open.erase(open.begin());
  bool admitted = false;
  for (int attempt = 0; attempt < 40 && !admitted; ++attempt) {
    SmtpTestClient next;
    next.connect("127.0.0.1", relay.port());
    admitted = next.read_reply().code == 220;
    if (!admitted) std::this_thread::sleep_for(25ms);
  }
  EXPECT_TRUE(admitted);
  relay.stop();
  EXPECT_EQ(relay.daemon().loop_close_status(), 0);
}

// SO_REUSEPORT alone would let a second relay (same user) bind the same address and take
// half of the connections; the first loop checks the address is free before sharing it, so
// a second start fails as it does with one loop.
TEST(Workers, ASecondRelayOnTheSameAddressFailsToStart) {
  FakeUpstream working;
  RelaySettings settings;
  settings.server_extra = "workers = 2";
  settings.upstreams = {plain_upstream("good", working.port())};
  RelayUnderTest relay(settings);
  std::string toml = settings.toml();
  const std::string any_port = "127.0.0.1:0";
  toml.replace(toml.find(any_port), any_port.size(), "127.0.0.1:" + std::to_string(relay.port()));
  DaemonThread second(config::parse_config(toml, "second.toml"));
  try {
    second.start();
    ADD_FAILURE() << "a second relay started on port " << relay.port();
  } catch (const std::exception& error) {
    EXPECT_NE(std::string(error.what()).find("address already in use"), std::string::npos)
        << error.what();
  }
  relay.stop();
  EXPECT_EQ(relay.daemon().loop_close_status(), 0);
}

// A reload reaches every loop: afterwards messages on both loops go to the new chain.
TEST(Workers, ReloadReachesEveryLoop) {
  FakeUpstream before;
  FakeUpstream after;
  RelaySettings settings;
  settings.server_extra = "workers = 2";
  settings.upstreams = {plain_upstream("before", before.port())};
  RelayUnderTest relay(settings);
  settings.upstreams = {plain_upstream("after", after.port())};
  ASSERT_TRUE(relay.reload(settings));

  std::size_t messages = 0;
  for (int attempt = 0; attempt < 64; ++attempt) {
    auto client = relay.client();
    SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
    ASSERT_EQ(reply.code, 250) << reply.raw;
    EXPECT_NE(reply.text.find("relayed via after:"), std::string::npos) << reply.raw;
    client->command("QUIT");
    ++messages;
    const auto counts = sessions_per_loop(relay);
    if (counts[0] >= 1 && counts[1] >= 1) break;
  }
  const auto counts = sessions_per_loop(relay);
  EXPECT_GE(counts[0], 1u);
  EXPECT_GE(counts[1], 1u);
  EXPECT_TRUE(after.wait_for_transactions(messages, 5s));
  EXPECT_EQ(before.transactions().size(), 0u);
  // A reload that changes the number of loops is refused (it needs a restart).
  settings.server_extra = "workers = 3";
  EXPECT_FALSE(relay.reload(settings));
  relay.stop();
  EXPECT_EQ(relay.daemon().loop_close_status(), 0);
}

}  // namespace
}  // namespace portrelay::test
