// The whole relay (DaemonThread from a TOML config) against loopback peers: staggered
// racing, cool-down, background probe and fail-back, and the upstream connection pool.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "portrelay/app/daemon_thread.hpp"
#include "portrelay/config/config.hpp"
#include "support/blocked_ports.hpp"
#include "support/fake_upstream.hpp"
#include "support/smtp_test_client.hpp"

namespace portrelay::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Labels = std::map<std::string, std::string>;

struct ChainEntry {
  std::string name;
  std::uint16_t port;
};

// Plaintext upstreams on loopback: the FakeUpstreams here offer no STARTTLS.
std::string relay_toml(const std::vector<ChainEntry>& chain, const std::string& relay_keys) {
  std::ostringstream toml;
  toml << "[server]\n"
       << "listen = [\"127.0.0.1:0\"]\n"
       << "hostname = \"relay.test\"\n"
       // One loop: these tests count one selector's pool (its reuses, the probe's warm
       // connection); with [server] workers each loop has a pool of its own (workers_test.cpp).
       << "workers = 1\n"
       << "[relay]\n"
       << relay_keys;
  // Short defaults so a broken relay fails the test instead of hanging it.
  for (const char* key : {"greeting_timeout", "command_timeout", "data_timeout"})
    if (relay_keys.find(std::string(key) + " =") == std::string::npos) toml << key << " = \"5s\"\n";
  // These tests count the connections of message traffic and fail-back probes exactly;
  // start-up and periodic probes would add theirs (health_probes_test.cpp covers them).
  toml << "probe_interval = \"0s\"\n";
  toml << "[metrics]\n"
       << "enabled = false\n";
  for (const auto& entry : chain)
    toml << "[[upstream]]\n"
         << "name = \"" << entry.name << "\"\n"
         << "host = \"127.0.0.1\"\n"
         << "port = " << entry.port << "\n"
         << "tls = \"none\"\n";
  return toml.str();
}

// A running relay built from a config file's text, exactly as `portrelay run` would.
class Relay {
 public:
  Relay(const std::vector<ChainEntry>& chain, const std::string& relay_keys)
      : daemon_(config::parse_config(relay_toml(chain, relay_keys), "test.toml")) {
    daemon_.start();
  }
  std::uint16_t port() { return daemon_.listener_ports().at(0); }

  // Sum of every series of `name` whose labels include `labels` (-1: no such series).
  double metric(const std::string& name, const Labels& labels) {
    std::istringstream lines(daemon_.metrics_text());
    std::string line;
    double sum = -1;
    while (std::getline(lines, line)) {
      if (line.rfind(name, 0) != 0) continue;
      std::size_t after = name.size();
      if (after >= line.size() || (line[after] != '{' && line[after] != ' ')) continue;
      std::size_t close = line.find('}');
      std::string label_text = close == std::string::npos ? "" : line.substr(after, close - after);
      bool match = true;
      for (const auto& [key, value] : labels)
        if (label_text.find(key + "=\"" + value + "\"") == std::string::npos) match = false;
      if (!match) continue;
      std::string value = line.substr(line.rfind(' ') + 1);
      sum = (sum < 0 ? 0 : sum) + std::stod(value);
    }
    return sum;
  }
  double attempts(const std::string& upstream) {
    return metric("portrelay_upstream_connect_attempts_total", {{"upstream", upstream}});
  }
  double failures(const std::string& upstream, const std::string& reason = "") {
    Labels labels{{"upstream", upstream}};
    if (!reason.empty()) labels["reason"] = reason;
    return metric("portrelay_upstream_connect_failures_total", labels);
  }
  double cancelled(const std::string& upstream) {
    return metric("portrelay_upstream_connect_cancelled_total", {{"upstream", upstream}});
  }
  double reuses(const std::string& upstream) {
    return metric("portrelay_upstream_pool_reuses_total", {{"upstream", upstream}});
  }
  double up(const std::string& upstream) {
    return metric("portrelay_upstream_up", {{"upstream", upstream}});
  }

 private:
  DaemonThread daemon_;
};

struct Sent {
  SmtpReply reply;
  std::chrono::milliseconds took;  // MAIL FROM to the reply to the final dot
};

// One client session submitting one message.
Sent send_message(std::uint16_t port, const std::string& subject = "test") {
  SmtpTestClient client(10s);
  client.connect("127.0.0.1", port);
  EXPECT_EQ(client.read_reply().code, 220);
  EXPECT_EQ(client.command("EHLO client.test").code, 250);
  auto started = Clock::now();
  SmtpReply reply = client.send_message("app@example.com", {"user@example.net"},
                                        "Subject: " + subject + "\r\n\r\nHello.\r\n");
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  client.command("QUIT");
  return {reply, took};
}

// A port that accepts TCP but never greets (a tarpit, an intercepting proxy) is cancelled
// when another endpoint wins, so it never fails on its own; it must still be remembered,
// or every message would pay the stagger on it.
TEST(RacingTarpit, ConnectedButSilentEndpointIsSkippedByLaterMessages) {
  FakeUpstream tarpit({.send_greeting = false});
  FakeUpstream working;
  Relay relay({{"tarpit", tarpit.port()}, {"working", working.port()}},
              "connect_timeout = \"5s\"\ngreeting_timeout = \"30s\"\nstagger = \"100ms\"\n"
              "cooldown = \"30s\"\n");
  Sent first = send_message(relay.port(), "first");
  EXPECT_EQ(first.reply.code, 250) << first.reply.raw;
  EXPECT_LT(first.took, 1s);
  EXPECT_EQ(relay.cancelled("tarpit"), 1);
  EXPECT_EQ(relay.failures("tarpit"), 0);
  for (int i = 0; i < 3; ++i) {
    Sent next = send_message(relay.port(), "next " + std::to_string(i));
    EXPECT_EQ(next.reply.code, 250) << next.reply.raw;
    EXPECT_LT(next.took, 80ms) << "waited a stagger on the tarpit again";
  }
  EXPECT_EQ(relay.attempts("tarpit"), 1);
  EXPECT_EQ(working.transactions().size(), 4u);
}

TEST(RacingBlackhole, SecondEndpointWinsAfterStaggerAndBlackholeIsSkippedLater) {
  BlackholePort blackhole;
  FakeUpstream working;
  Relay relay({{"blackhole", blackhole.port()}, {"working", working.port()}},
              "connect_timeout = \"5s\"\nstagger = \"100ms\"\ncooldown = \"30s\"\n");

  Sent first = send_message(relay.port(), "first");
  EXPECT_EQ(first.reply.code, 250) << first.reply.raw;
  EXPECT_GE(first.took, 100ms);
  EXPECT_LT(first.took, 1s) << "paid the connect timeout instead of the stagger";
  EXPECT_EQ(relay.attempts("blackhole"), 1);
  EXPECT_EQ(relay.cancelled("blackhole"), 1);
  EXPECT_EQ(relay.failures("blackhole"), 0) << "a cancelled attempt is not a failure";
  EXPECT_EQ(relay.cancelled("working"), 0);

  for (int i = 0; i < 5; ++i) {
    Sent next = send_message(relay.port(), "next " + std::to_string(i));
    EXPECT_EQ(next.reply.code, 250) << next.reply.raw;
    EXPECT_LT(next.took, 100ms) << "message " << i << " waited for the suspect blackhole";
  }
  EXPECT_EQ(relay.attempts("blackhole"), 1) << "suspect endpoint retried during its cool-down";
  ASSERT_TRUE(working.wait_for_transactions(6, 2s));
  EXPECT_EQ(working.transactions().size(), 6u);
}

TEST(RacingRefused, FailsOverAtOnceAndCoolsDown) {
  RefusedPort refused;
  FakeUpstream working;
  Relay relay({{"refused", refused.port()}, {"working", working.port()}},
              "connect_timeout = \"5s\"\nstagger = \"1s\"\ncooldown = \"30s\"\n");

  Sent first = send_message(relay.port());
  EXPECT_EQ(first.reply.code, 250) << first.reply.raw;
  EXPECT_LT(first.took, 500ms) << "a refused connect must not wait for the stagger";
  EXPECT_EQ(relay.failures("refused", "refused"), 1);
  EXPECT_EQ(relay.failures("refused"), 1);
  EXPECT_EQ(relay.attempts("refused"), 1);

  Sent second = send_message(relay.port());
  EXPECT_EQ(second.reply.code, 250) << second.reply.raw;
  EXPECT_EQ(relay.attempts("refused"), 1) << "refused endpoint retried during its cool-down";
  EXPECT_EQ(relay.failures("refused"), 1);
  EXPECT_EQ(working.transactions().size(), 2u);
}

TEST(RacingSequential, MaxParallelOneWaitsForTheConnectTimeout) {
  BlackholePort blackhole;
  FakeUpstream working;
  Relay relay({{"blackhole", blackhole.port()}, {"working", working.port()}},
              "connect_timeout = \"400ms\"\nstagger = \"100ms\"\nmax_parallel = 1\n");

  Sent sent = send_message(relay.port());
  EXPECT_EQ(sent.reply.code, 250) << sent.reply.raw;
  EXPECT_GE(sent.took, 400ms);
  EXPECT_LT(sent.took, 1500ms);
  EXPECT_EQ(relay.failures("blackhole", "timeout"), 1);
  EXPECT_EQ(relay.failures("blackhole"), 1);
  EXPECT_EQ(relay.cancelled("blackhole"), 0);
  EXPECT_EQ(working.transactions().size(), 1u);
}

TEST(RacingSlowGreeting, FastSecondEndpointWinsWithinTheStagger) {
  FakeUpstream::Config slow_config;
  slow_config.greeting_delay = 2s;
  FakeUpstream slow(slow_config);
  FakeUpstream fast;
  Relay relay({{"slow", slow.port()}, {"fast", fast.port()}},
              "connect_timeout = \"5s\"\nstagger = \"100ms\"\n");

  Sent sent = send_message(relay.port());
  EXPECT_EQ(sent.reply.code, 250) << sent.reply.raw;
  EXPECT_GE(sent.took, 100ms);
  EXPECT_LT(sent.took, 600ms);
  EXPECT_EQ(relay.cancelled("slow"), 1);
  EXPECT_EQ(relay.failures("slow"), 0);
  EXPECT_EQ(fast.transactions().size(), 1u);
  EXPECT_TRUE(slow.transactions().empty());
}

// The slow endpoint is healthy (it connects, it just greets late), so every message tries
// it first; meanwhile the winner's warm connection from the last message waits in the pool.
TEST(RacingSlowGreeting, LaterMessagesUseThePooledConnectionOfTheWinner) {
  FakeUpstream::Config slow_config;
  slow_config.greeting_delay = 2s;
  FakeUpstream slow(slow_config);
  FakeUpstream fast;
  Relay relay({{"slow", slow.port()}, {"fast", fast.port()}},
              "connect_timeout = \"5s\"\nstagger = \"100ms\"\n");
  for (int i = 0; i < 3; ++i) {
    Sent sent = send_message(relay.port());
    EXPECT_EQ(sent.reply.code, 250) << sent.reply.raw;
    EXPECT_LT(sent.took, 600ms);
  }
  EXPECT_EQ(fast.transactions().size(), 3u);
  EXPECT_EQ(fast.connection_count(), 1u) << "a new connection per message, pool unused";
  EXPECT_EQ(relay.reuses("fast"), 2);
}

TEST(RacingFailBack, BackgroundProbeReturnsTrafficToThePreferredEndpoint) {
  FakeUpstream preferred;
  FakeUpstream backup;
  preferred.set_override(SmtpStage::kGreeting,
                         StageAction::reply_with("554 5.3.2 not accepting mail right now"));
  Relay relay({{"preferred", preferred.port()}, {"backup", backup.port()}},
              "connect_timeout = \"2s\"\nstagger = \"100ms\"\ncooldown = \"200ms\"\n"
              "cooldown_max = \"200ms\"\n");

  Sent first = send_message(relay.port());
  EXPECT_EQ(first.reply.code, 250) << first.reply.raw;
  EXPECT_EQ(relay.failures("preferred", "greeting_rejected"), 1);
  EXPECT_EQ(backup.transactions().size(), 1u);
  EXPECT_EQ(preferred.connection_count(), 1u);

  preferred.clear_override(SmtpStage::kGreeting);
  // No traffic now: only the background probe (every 1s, once the cool-down is over) can
  // find out that the preferred endpoint is back.
  ASSERT_TRUE(preferred.wait_for_connections(2, 3s)) << "no background probe";
  auto deadline = Clock::now() + 2s;
  while (relay.up("preferred") != 1 && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(relay.up("preferred"), 1);

  Sent after = send_message(relay.port());
  EXPECT_EQ(after.reply.code, 250) << after.reply.raw;
  ASSERT_TRUE(preferred.wait_for_transactions(1, 2s)) << "traffic did not fail back";
  EXPECT_EQ(backup.transactions().size(), 1u);
  EXPECT_EQ(preferred.connection_count(), 2u) << "the probe's warm connection was not reused";
  EXPECT_EQ(relay.reuses("preferred"), 1);
}

TEST(RacingFailBack, LaterMessagesReachTheRecoveredEndpoint) {
  FakeUpstream preferred;
  FakeUpstream backup;
  preferred.set_override(SmtpStage::kGreeting, StageAction::reply_with("554 5.3.2 go away"));
  Relay relay({{"preferred", preferred.port()}, {"backup", backup.port()}},
              "connect_timeout = \"2s\"\nstagger = \"100ms\"\ncooldown = \"200ms\"\n");

  EXPECT_EQ(send_message(relay.port()).reply.code, 250);
  EXPECT_EQ(backup.transactions().size(), 1u);
  preferred.clear_override(SmtpStage::kGreeting);

  auto deadline = Clock::now() + 5s;
  while (preferred.transactions().empty() && Clock::now() < deadline) {
    EXPECT_EQ(send_message(relay.port()).reply.code, 250);
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(preferred.transactions().size(), 1u) << "traffic never failed back";
}

TEST(RacingPool, SequentialSessionsReuseOneUpstreamConnection) {
  FakeUpstream upstream;
  Relay relay({{"upstream", upstream.port()}},
              "pool_max_per_endpoint = 4\npool_check_after = \"0s\"\n");
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(send_message(relay.port(), std::to_string(i)).reply.code, 250);
  ASSERT_TRUE(upstream.wait_for_transactions(5, 2s));
  EXPECT_EQ(upstream.connection_count(), 1u);
  EXPECT_EQ(relay.reuses("upstream"), 4);
  EXPECT_EQ(relay.attempts("upstream"), 1);
  // pool_check_after = 0s: every reuse was checked with RSET first.
  auto commands = upstream.commands(0);
  EXPECT_EQ(std::count(commands.begin(), commands.end(), "RSET"), 4);
}

// The default pool_check_after (2s): a connection whose server answered moments ago, its
// last transaction finished, is reused without the RSET round trip.
TEST(RacingPool, RecentlyAnsweredConnectionIsReusedWithoutRset) {
  FakeUpstream upstream;
  Relay relay({{"upstream", upstream.port()}}, "pool_max_per_endpoint = 4\n");
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(send_message(relay.port(), std::to_string(i)).reply.code, 250);
  ASSERT_TRUE(upstream.wait_for_transactions(5, 2s));
  EXPECT_EQ(upstream.connection_count(), 1u);
  EXPECT_EQ(relay.reuses("upstream"), 4);
  auto commands = upstream.commands(0);
  EXPECT_EQ(std::count(commands.begin(), commands.end(), "RSET"), 0);
}

// A transaction left open on the connection (554 to DATA leaves MAIL and RCPT in place) is
// cleared with RSET before the next message, however recent the reply.
TEST(RacingPool, OpenTransactionIsClearedWithRsetBeforeReuse) {
  FakeUpstream upstream;
  upstream.set_override(SmtpStage::kData, StageAction::reply_with("554 5.7.1 Not now").only(1));
  Relay relay({{"upstream", upstream.port()}}, "pool_max_per_endpoint = 4\n");
  EXPECT_EQ(send_message(relay.port(), "refused").reply.code, 554);
  EXPECT_EQ(send_message(relay.port(), "taken").reply.code, 250);
  EXPECT_EQ(send_message(relay.port(), "taken too").reply.code, 250);
  ASSERT_TRUE(upstream.wait_for_transactions(2, 2s));
  EXPECT_EQ(upstream.connection_count(), 1u);
  auto commands = upstream.commands(0);
  // One RSET: after the refused DATA; none after the transaction that ended with 250.
  EXPECT_EQ(std::count(commands.begin(), commands.end(), "RSET"), 1);
}

// The server closed the connection right after its last answer, inside pool_check_after:
// the unchecked reuse fails at MAIL as a stale connection, and the message goes out on a
// fresh one without blaming the endpoint.
TEST(RacingPool, UncheckedReuseOfAClosedConnectionIsRetriedAfresh) {
  FakeUpstream upstream;
  Relay relay({{"upstream", upstream.port()}}, "pool_max_per_endpoint = 4\n");
  EXPECT_EQ(send_message(relay.port(), "one").reply.code, 250);
  upstream.set_override(SmtpStage::kMail, StageAction::close_connection().only(1));
  Sent second = send_message(relay.port(), "two");
  EXPECT_EQ(second.reply.code, 250) << second.reply.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(2, 2s));
  EXPECT_EQ(upstream.connection_count(), 2u);
  EXPECT_EQ(relay.failures("upstream"), 0)
      << "a stale pooled connection is not an endpoint failure";
}

// An idle pooled connection is closed politely when pool_idle_timeout ends (the expiry
// timer is destroyed from inside its own callback), and the next message connects afresh.
TEST(RacingPool, IdleConnectionIsQuitAfterTheIdleTimeout) {
  FakeUpstream upstream;
  Relay relay({{"up", upstream.port()}}, "pool_idle_timeout = \"200ms\"\n");
  EXPECT_EQ(send_message(relay.port(), "first").reply.code, 250);
  EXPECT_EQ(relay.metric("portrelay_upstream_pool_idle_connections", {{"upstream", "up"}}), 1);
  ASSERT_TRUE(upstream.wait_for_idle(3s)) << "idle pooled connection was never closed";
  EXPECT_EQ(upstream.commands(0).back(), "QUIT");
  EXPECT_EQ(relay.metric("portrelay_upstream_pool_idle_connections", {{"upstream", "up"}}), 0);
  EXPECT_EQ(send_message(relay.port(), "second").reply.code, 250);
  EXPECT_EQ(upstream.connection_count(), 2u);
  EXPECT_EQ(relay.reuses("up"), 0);
}

TEST(RacingPool, DisabledPoolConnectsPerMessage) {
  FakeUpstream upstream;
  Relay relay({{"upstream", upstream.port()}}, "pool_max_per_endpoint = 0\n");
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(send_message(relay.port(), std::to_string(i)).reply.code, 250);
  ASSERT_TRUE(upstream.wait_for_transactions(5, 2s));
  EXPECT_EQ(upstream.connection_count(), 5u);
  EXPECT_EQ(relay.reuses("upstream"), 0);
  EXPECT_EQ(relay.attempts("upstream"), 5);
}

TEST(RacingPool, DeadPooledConnectionIsReplacedWithoutBlamingTheEndpoint) {
  FakeUpstream upstream;
  Relay relay({{"upstream", upstream.port()}},
              "pool_max_per_endpoint = 4\npool_check_after = \"0s\"\n");
  EXPECT_EQ(send_message(relay.port(), "one").reply.code, 250);
  // The idle connection dies: the server hangs up when the pool checks it with RSET.
  upstream.set_override(SmtpStage::kRset, StageAction::close_connection().only(1));

  Sent second = send_message(relay.port(), "two");
  EXPECT_EQ(second.reply.code, 250) << second.reply.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(2, 2s));
  EXPECT_EQ(upstream.connection_count(), 2u);
  EXPECT_EQ(relay.failures("upstream"), 0) << "a dead idle connection is not an endpoint failure";
  EXPECT_EQ(relay.reuses("upstream"), 0);
  EXPECT_EQ(relay.attempts("upstream"), 2);
  EXPECT_EQ(upstream.transactions()[1].connection, 1u);
}

// A pooled connection whose server vanished without a FIN (NAT state dropped, peer
// rebooted) never answers the RSET check; the message must not wait command_timeout.
TEST(RacingPool, UnansweredRsetCheckGivesUpQuickly) {
  FakeUpstream upstream;
  Relay relay(
      {{"upstream", upstream.port()}},
      "connect_timeout = \"300ms\"\ncommand_timeout = \"30s\"\npool_check_after = \"0s\"\n");
  EXPECT_EQ(send_message(relay.port(), "one").reply.code, 250);
  upstream.set_override(SmtpStage::kRset, StageAction::hang().only(1));

  Sent second = send_message(relay.port(), "two");
  EXPECT_EQ(second.reply.code, 250) << second.reply.raw;
  EXPECT_LT(second.took, 1500ms);
  EXPECT_EQ(upstream.connection_count(), 2u);
  EXPECT_EQ(relay.failures("upstream"), 0);
}

TEST(RacingAllCooling, CoolingEndpointsAreStillTriedInChainOrder) {
  FakeUpstream first;
  FakeUpstream second;
  first.set_override(SmtpStage::kGreeting, StageAction::reply_with("554 5.3.2 busy").only(1));
  second.set_override(SmtpStage::kGreeting, StageAction::reply_with("554 5.3.2 busy").only(1));
  Relay relay({{"first", first.port()}, {"second", second.port()}},
              "connect_timeout = \"2s\"\nstagger = \"100ms\"\ncooldown = \"30s\"\n");

  Sent failed = send_message(relay.port());
  EXPECT_EQ(failed.reply.code, 451) << failed.reply.raw;
  EXPECT_EQ(relay.failures("first", "greeting_rejected"), 1);
  EXPECT_EQ(relay.failures("second", "greeting_rejected"), 1);

  // Both are cooling down for 30s, but failing at once would be worse than trying.
  Sent sent = send_message(relay.port());
  EXPECT_EQ(sent.reply.code, 250) << sent.reply.raw;
  EXPECT_LT(sent.took, 1s);
  EXPECT_EQ(first.transactions().size(), 1u);
  EXPECT_TRUE(second.transactions().empty());
  EXPECT_EQ(relay.failures("first"), 1);
}

}  // namespace
}  // namespace portrelay::test
