// Configuration reload (SIGHUP): what Daemon::reload changes for new sessions, what it
// leaves alone for sessions in flight, and what it refuses. Real sockets throughout:
// the relay on its loop thread, FakeUpstream endpoints, blocking clients.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include "portrelay/base/log.hpp"
#include "relay_harness.hpp"
#include "support/blocked_ports.hpp"

namespace portrelay::test {
namespace {

RelaySettings chain_of(std::vector<std::string> upstreams, const std::string& relay_extra = "") {
  RelaySettings settings;
  settings.relay_extra = relay_extra;
  settings.upstreams = std::move(upstreams);
  return settings;
}

std::map<std::string, std::string> labels_of(const std::string& name, std::uint16_t port) {
  return {{"upstream", name}, {"port", std::to_string(port)}};
}

// After a reload, new sessions use the new chain; the series of the endpoint the reload
// added exist at zero before its first use; the idle pooled connection to the endpoint
// the reload removed is closed.
TEST(RelayReload, NewSessionsUseTheNewChainAndPooledConnectionsToTheOldOneClose) {
  FakeUpstream first, second;
  RelayUnderTest relay(chain_of({plain_upstream("first", first.port())}));
  {
    auto client = relay.client();
    SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
    ASSERT_EQ(reply.code, 250) << reply.raw;
    EXPECT_NE(reply.text.find("relayed via first:"), std::string::npos) << reply.raw;
  }
  ASSERT_TRUE(first.wait_for_transactions(1, 2s));
  EXPECT_EQ(first.open_connections(), 1u);  // pooled for the next message
  EXPECT_FALSE(metric_exists(relay.metrics_text(), "portrelay_upstream_connect_attempts_total",
                             labels_of("second", second.port())));
  // An idle session from before the reload keeps the old selector (and its pool) alive:
  // the pooled connection must be closed by the reload itself, not by the old selector
  // going away.
  auto idle_since_before = relay.client();

  ASSERT_TRUE(relay.reload(chain_of({plain_upstream("second", second.port())})));

  EXPECT_TRUE(first.wait_for_idle(2s)) << "the pooled connection to the removed endpoint stayed";
  std::string metrics = relay.metrics_text();
  EXPECT_TRUE(metric_exists(metrics, "portrelay_upstream_connect_attempts_total",
                            labels_of("second", second.port())));
  EXPECT_EQ(metric_value(metrics, "portrelay_upstream_connect_attempts_total",
                         labels_of("second", second.port())),
            0);
  EXPECT_TRUE(metric_exists(metrics, "portrelay_upstream_pool_idle_connections",
                            labels_of("second", second.port())));
  EXPECT_EQ(metric_value(metrics, "portrelay_config_last_reload_success"), 1);
  EXPECT_GT(metric_value(metrics, "portrelay_config_last_reload_timestamp_seconds"), 1.6e9);

  auto client = relay.client();
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  ASSERT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via second:"), std::string::npos) << reply.raw;
  ASSERT_TRUE(second.wait_for_transactions(1, 2s));
  EXPECT_EQ(first.transactions().size(), 1u);
  EXPECT_EQ(
      relay.metric("portrelay_upstream_connect_attempts_total", labels_of("second", second.port())),
      1);
}

// A session inside its transaction when the reload happens finishes it on the chain it
// started with; a session that connects afterwards uses the new one.
TEST(RelayReload, TransactionInFlightFinishesOnTheOldChain) {
  FakeUpstream first, second;
  RelayUnderTest relay(chain_of({plain_upstream("first", first.port())}));
  auto during = relay.client();
  begin_data(*during);  // MAIL and RCPT already went to `first`

  ASSERT_TRUE(relay.reload(chain_of({plain_upstream("second", second.port())})));

  auto after = relay.client();
  SmtpReply reply = after->send_message("c@example.test", {"d@example.test"}, sample_message());
  ASSERT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via second:"), std::string::npos) << reply.raw;

  during->send_raw(sample_message("started before the reload") + ".\r\n");
  reply = during->read_reply();
  ASSERT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via first:"), std::string::npos) << reply.raw;

  ASSERT_TRUE(first.wait_for_transactions(1, 2s));
  ASSERT_TRUE(second.wait_for_transactions(1, 2s));
  EXPECT_EQ(first.transactions().at(0).content, sample_message("started before the reload"));
  // The old selector is retired: the connection handed back after that message is closed,
  // not pooled.
  EXPECT_TRUE(first.wait_for_idle(2s));
}

// A file that does not load, or that changes a listening address, leaves the running
// configuration in place; the reload metric says so, with the error's position logged.
TEST(RelayReload, InvalidFileKeepsTheRunningConfigurationAndSetsTheMetricToZero) {
  FakeUpstream first, second;
  RelayUnderTest relay(chain_of({plain_upstream("first", first.port())}));
  const std::string path = ::testing::TempDir() + "portrelay-reload-invalid.toml";
  {
    std::ofstream file(path);
    file << "[server]\nlisten = [\"127.0.0.1:0\"]\nmax_recipients = \"many\"\n";
  }
  log::set_enabled(true);
  testing::internal::CaptureStderr();
  const bool applied = relay.reload_file(path);
  const std::string logged = testing::internal::GetCapturedStderr();
  log::set_enabled(false);
  EXPECT_FALSE(applied);
  EXPECT_NE(logged.find("event=reload_failed"), std::string::npos) << logged;
  EXPECT_NE(logged.find(path + ":3:"), std::string::npos) << logged;  // file:line:col
  EXPECT_EQ(relay.metric("portrelay_config_last_reload_success"), 0);
  EXPECT_GT(relay.metric("portrelay_config_last_reload_timestamp_seconds"), 1.6e9);

  // A valid file that adds a listener (the metrics endpoint): refused as a whole, since
  // listening sockets are bound at start only.
  RelaySettings moved = chain_of({plain_upstream("second", second.port())});
  moved.metrics = "enabled = true\nlisten = \"127.0.0.1:0\"";
  log::set_enabled(true);
  testing::internal::CaptureStderr();
  EXPECT_FALSE(relay.reload(moved));
  const std::string refused = testing::internal::GetCapturedStderr();
  log::set_enabled(false);
  EXPECT_NE(refused.find("restart"), std::string::npos) << refused;
  EXPECT_EQ(relay.metric("portrelay_config_last_reload_success"), 0);

  auto client = relay.client();
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  ASSERT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via first:"), std::string::npos) << reply.raw;
  EXPECT_EQ(second.connection_count(), 0u);

  // And a good file afterwards is applied and sets the metric back to 1.
  ASSERT_TRUE(relay.reload(chain_of({plain_upstream("second", second.port())})));
  EXPECT_EQ(relay.metric("portrelay_config_last_reload_success"), 1);
  std::remove(path.c_str());
}

// Health memory is keyed by endpoint identity: an endpoint that refused and is cooling
// down is still skipped after a reload that keeps it (here, moved behind a new endpoint
// and with another limit changed), so no message pays for it again.
TEST(RelayReload, UnchangedEndpointKeepsCoolingDownAcrossTheReload) {
  RefusedPort refused;
  FakeUpstream good;
  const std::string relay_extra = "cooldown = \"30s\"\n";
  RelayUnderTest relay(
      chain_of({plain_upstream("refused", refused.port()), plain_upstream("good", good.port())},
               relay_extra));
  const auto refused_attempts = [&]() {
    return relay.metric("portrelay_upstream_connect_attempts_total",
                        labels_of("refused", refused.port()));
  };
  auto send = [&](const std::string& subject) {
    auto client = relay.client();
    SmtpReply reply =
        client->send_message("a@example.test", {"b@example.test"}, sample_message(subject));
    EXPECT_EQ(reply.code, 250) << reply.raw;
    EXPECT_NE(reply.text.find("relayed via good:"), std::string::npos) << reply.raw;
  };
  send("first");
  EXPECT_EQ(refused_attempts(), 1);  // refused once: now cooling down for 30 s
  send("second, before the reload");
  EXPECT_EQ(refused_attempts(), 1);

  FakeUpstream added;  // never preferred: it goes to the end of the chain
  ASSERT_TRUE(relay.reload(
      chain_of({plain_upstream("refused", refused.port()), plain_upstream("good", good.port()),
                plain_upstream("added", added.port())},
               relay_extra + "max_parallel = 2\n")));
  send("third, after the reload");
  EXPECT_EQ(refused_attempts(), 1) << "the reload forgot that `refused` is cooling down";
  EXPECT_EQ(relay.metric("portrelay_upstream_up", labels_of("refused", refused.port())), 0);
  ASSERT_TRUE(good.wait_for_transactions(3, 2s));
}

// Under load: four clients keep submitting while the chain is switched back and forth
// ten times. Sessions straddle reloads (five messages per connection); none may fail.
TEST(RelayReload, NoSubmissionFailsWhileReloadingUnderLoad) {
  FakeUpstream first, second;
  const RelaySettings one = chain_of({plain_upstream("first", first.port())});
  const RelaySettings two = chain_of({plain_upstream("second", second.port())});
  RelayUnderTest relay(one);
  constexpr int kThreads = 4;
  constexpr int kMessagesPerThread = 50;
  constexpr int kMessagesPerSession = 5;
  constexpr int kReloads = 10;
  std::atomic<int> sent{0}, accepted{0};
  std::vector<std::string> failures[kThreads];
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t]() {
      try {
        for (int session = 0; session < kMessagesPerThread / kMessagesPerSession; ++session) {
          SmtpTestClient client(10s);
          client.connect("127.0.0.1", relay.port());
          if (client.read_reply().code != 220 || client.command("EHLO load.test").code != 250)
            failures[t].push_back("greeting or EHLO failed");
          for (int m = 0; m < kMessagesPerSession; ++m) {
            SmtpReply reply =
                client.send_message("a@example.test", {"b@example.test"}, sample_message("load"));
            ++sent;
            if (reply.code == 250)
              ++accepted;
            else
              failures[t].push_back(reply.raw);
          }
          client.command("QUIT");
        }
      } catch (const std::exception& error) {
        failures[t].push_back(error.what());
      }
    });
  }
  int reloads = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (int k = 1; k <= kReloads && std::chrono::steady_clock::now() < deadline; ++k) {
    // Spread the reloads over the first three quarters of the load.
    while (sent < k * (kThreads * kMessagesPerThread * 3 / 4) / kReloads &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    if (relay.reload(k % 2 ? two : one)) ++reloads;
  }
  for (auto& thread : clients) thread.join();
  for (int t = 0; t < kThreads; ++t)
    for (const auto& failure : failures[t]) ADD_FAILURE() << "client " << t << ": " << failure;
  EXPECT_EQ(reloads, kReloads);
  EXPECT_EQ(sent, kThreads * kMessagesPerThread);
  EXPECT_EQ(accepted, kThreads * kMessagesPerThread);
  ASSERT_TRUE(first.wait_for_transactions(1, 2s));
  ASSERT_TRUE(second.wait_for_transactions(1, 2s));
  EXPECT_EQ(first.transactions().size() + second.transactions().size(),
            static_cast<std::size_t>(kThreads * kMessagesPerThread));
  EXPECT_EQ(relay.metric("portrelay_messages_total", {{"result", "relayed"}}),
            kThreads * kMessagesPerThread);
  std::printf(
      "[ figures  ] %d messages sent, %d accepted with 250, %d reloads, first=%zu "
      "second=%zu\n",
      sent.load(), accepted.load(), reloads, first.transactions().size(),
      second.transactions().size());
}

}  // namespace
}  // namespace portrelay::test
