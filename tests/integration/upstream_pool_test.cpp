// The upstream pool fits the load (issue #19): a burst of concurrent messages leaves its
// connections in the pool, so the next burst of the same size opens none; the ceiling
// (pool_max_per_endpoint) and an upstream's max_connections still bound it. Real relay,
// loopback fake upstream, connections counted where the upstream accepts them.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <latch>
#include <thread>
#include <vector>

#include "integration/relay_harness.hpp"

namespace portrelay::test {
namespace {

using Clock = std::chrono::steady_clock;

// More than the old fixed defaults (4 in the benchmark, 16 in the config).
constexpr std::size_t kBurst = 20;

// `count` clients each begin a message (MAIL, RCPT, DATA: each holds an upstream connection
// from MAIL on), wait until all have, then finish it. So `count` connections to the
// upstream are in use at once. Returns how many got 250.
std::size_t concurrent_burst(RelayUnderTest& relay, std::size_t count) {
  std::latch all_in_data(static_cast<std::ptrdiff_t>(count));
  std::vector<std::future<bool>> clients;
  for (std::size_t i = 0; i < count; ++i)
    clients.push_back(std::async(std::launch::async, [&relay, &all_in_data]() {
      auto client = relay.client();
      begin_data(*client);
      all_in_data.arrive_and_wait();
      client->send_raw(sample_message("burst") + ".\r\n");
      const bool ok = client->read_reply().code == 250;
      client->command("QUIT");
      return ok;
    }));
  std::size_t delivered = 0;
  for (auto& client : clients) delivered += client.get() ? 1 : 0;
  return delivered;
}

// Twenty connects at once on a machine busy with builds: the harness's short connect and
// greeting timeouts (meant for failure paths) would turn a slow accept into a failure.
RelaySettings patient(std::vector<std::string> upstreams, std::string relay_extra = "") {
  RelaySettings settings;
  settings.connect_timeout = "5s";
  settings.greeting_timeout = "5s";
  settings.relay_extra = std::move(relay_extra);
  settings.upstreams = std::move(upstreams);
  // One loop: these tests count one pool; with [server] workers each loop has its own
  // (workers_test.cpp checks the gauge sums them).
  settings.server_extra = "workers = 1";
  return settings;
}

// The pool gauge reaches `want` (connections come back just before the client's reply).
bool idle_reaches(RelayUnderTest& relay, const std::string& upstream, double want) {
  const auto deadline = Clock::now() + 3s;
  while (Clock::now() < deadline) {
    if (relay.metric("portrelay_upstream_pool_idle_connections", {{"upstream", upstream}}) == want)
      return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

std::size_t quits(const FakeUpstream& upstream) {
  std::size_t count = 0;
  for (const auto& connection : upstream.all_commands())
    for (const auto& line : connection) count += line == "QUIT";
  return count;
}

TEST(UpstreamPool, WithTheDefaultConfigABurstIsKeptAndTheNextBurstOpensNoConnection) {
  FakeUpstream upstream;
  RelayUnderTest relay(patient({plain_upstream("up", upstream.port())}));

  ASSERT_EQ(concurrent_burst(relay, kBurst), kBurst);
  EXPECT_EQ(upstream.connection_count(), kBurst) << "the burst needed one connection per message";
  ASSERT_TRUE(idle_reaches(relay, "up", static_cast<double>(kBurst)))
      << "the pool kept the whole burst";
  EXPECT_EQ(quits(upstream), 0u) << "no connection was closed when it came back";

  ASSERT_EQ(concurrent_burst(relay, kBurst), kBurst);
  ASSERT_TRUE(upstream.wait_for_transactions(2 * kBurst, 2s));
  EXPECT_EQ(upstream.connection_count(), kBurst) << "the second burst opened a new connection";
  EXPECT_EQ(relay.metric("portrelay_upstream_pool_reuses_total", {{"upstream", "up"}}),
            static_cast<double>(kBurst));
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_attempts_total", {{"upstream", "up"}}),
            static_cast<double>(kBurst));
  EXPECT_TRUE(idle_reaches(relay, "up", static_cast<double>(kBurst)));
}

// pool_max_per_endpoint is the ceiling: what a burst leaves above it is closed (QUIT) as it
// comes back, and the next burst opens that many again.
TEST(UpstreamPool, TheCeilingBoundsWhatABurstLeaves) {
  FakeUpstream upstream;
  RelayUnderTest relay(
      patient({plain_upstream("up", upstream.port())}, "pool_max_per_endpoint = 4\n"));

  ASSERT_EQ(concurrent_burst(relay, 8), 8u);
  EXPECT_EQ(upstream.connection_count(), 8u);
  ASSERT_TRUE(idle_reaches(relay, "up", 4));
  ASSERT_TRUE(upstream.wait_for_connections(8, 1s));
  const auto deadline = Clock::now() + 2s;
  while (upstream.open_connections() > 4 && Clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(upstream.open_connections(), 4u);
  EXPECT_EQ(quits(upstream), 4u);

  ASSERT_EQ(concurrent_burst(relay, 8), 8u);
  EXPECT_EQ(upstream.connection_count(), 12u);
  EXPECT_EQ(relay.metric("portrelay_upstream_pool_reuses_total", {{"upstream", "up"}}), 4);
}

// An upstream's max_connections bounds the pool: at no time more than the cap is open at
// the provider, pooled connections included; the pool keeps what the cap allowed, and the
// next burst opens nothing.
TEST(UpstreamPool, MaxConnectionsBoundsThePoolAndTheBurstsItServes) {
  FakeUpstream upstream;
  upstream.set_override(SmtpStage::kDataEnd, StageAction::delayed(100ms, "250 2.0.0 Ok"));
  RelayUnderTest relay(patient({plain_upstream("capped", upstream.port(), "max_connections = 3")},
                               "max_limit_wait = \"10s\"\n"));
  std::atomic<bool> done{false};
  std::atomic<std::size_t> most{0};
  std::thread watcher([&]() {
    while (!done) {
      most = std::max<std::size_t>(most, upstream.open_connections());
      std::this_thread::sleep_for(1ms);
    }
  });
  // Sent at once, without waiting for each other: the cap makes 3 of them wait.
  auto burst = [&relay]() {
    std::vector<std::future<int>> clients;
    for (int i = 0; i < 8; ++i)
      clients.push_back(std::async(std::launch::async, [&relay]() {
        auto client = relay.client();
        return client->send_message("a@example.test", {"b@example.test"}, sample_message()).code;
      }));
    int delivered = 0;
    for (auto& client : clients) delivered += client.get() == 250;
    return delivered;
  };
  EXPECT_EQ(burst(), 8);
  const std::size_t opened = upstream.connection_count();
  EXPECT_LE(opened, 3u);
  EXPECT_TRUE(idle_reaches(relay, "capped", static_cast<double>(opened)))
      << "every connection the cap allowed stays pooled";
  EXPECT_EQ(burst(), 8);
  done = true;
  watcher.join();
  EXPECT_EQ(upstream.connection_count(), opened) << "the second burst opened a connection";
  EXPECT_LE(most.load(), 3u);
  EXPECT_EQ(upstream.transactions().size(), 16u);
}

}  // namespace
}  // namespace portrelay::test
