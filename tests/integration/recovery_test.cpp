// What the spool needs from endpoint selection, against real loopback ports:
//  * a chain known to be dead answers at once (451 after one stagger), not after
//    connect_timeout on a silently blocked port;
//  * recovery probing finds an endpoint that came back within seconds, not after its
//    30 s cool-down, and set_on_endpoint_up reports it (by a probe or a won race).
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "portrelay/config/config.hpp"
#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/loop_thread.hpp"
#include "portrelay/relay/endpoint_runtime.hpp"
#include "portrelay/relay/racing_selector.hpp"
#include "relay_harness.hpp"
#include "support/blocked_ports.hpp"
#include "support/fake_upstream.hpp"

namespace portrelay::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;

Ms since(Clock::time_point started) {
  return std::chrono::duration_cast<Ms>(Clock::now() - started);
}

// Endpoint 1 drops SYNs, the others refuse. The first message pays connect_timeout on the
// blackhole and cools every endpoint down; the next one must not pay it again.
TEST(RecoveryFailFast, ChainKnownDeadAnswers451WithinAboutAStagger) {
  BlackholePort blackhole;
  RefusedPort refused_a;
  RefusedPort refused_b;
  RelaySettings settings;
  settings.connect_timeout = "5s";
  settings.relay_extra = "stagger = \"100ms\"\ncooldown = \"30s\"\n";
  settings.upstreams = {plain_upstream("blackhole", blackhole.port()),
                        plain_upstream("refused-a", refused_a.port()),
                        plain_upstream("refused-b", refused_b.port())};
  RelayUnderTest relay(settings);

  auto first_client = relay.client(15s);
  auto started = Clock::now();
  SmtpReply first = first_client->command("MAIL FROM:<a@example.test>");
  Ms first_took = since(started);
  EXPECT_EQ(first.code, 451) << first.raw;
  EXPECT_GE(first_took, 4500ms) << "the first message had nothing to go on";
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_failures_total",
                         {{"upstream", "blackhole"}, {"reason", "timeout"}}),
            1);

  auto second_client = relay.client(15s);
  started = Clock::now();
  SmtpReply second = second_client->command("MAIL FROM:<a@example.test>");
  Ms second_took = since(started);
  EXPECT_EQ(second.code, 451) << second.raw;
  EXPECT_LT(second_took, 2s) << "waited out connect_timeout on an endpoint known to be dead";
  EXPECT_NE(second.text.find("cooling down"), std::string::npos) << second.raw;
  for (const char* name : {"blackhole:", "refused-a:", "refused-b:"})
    EXPECT_NE(second.text.find(name), std::string::npos) << name << " missing: " << second.raw;
  std::printf("[ measured ] first 451 after %lld ms, second after %lld ms: %s",
              static_cast<long long>(first_took.count()),
              static_cast<long long>(second_took.count()), second.raw.c_str());

  // The blackhole was tried again (it could have recovered) and cancelled, not failed;
  // the refused endpoints were skipped.
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_attempts_total", {{"upstream", "blackhole"}}),
            2);
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_cancelled_total", {{"upstream", "blackhole"}}),
            1);
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_failures_total", {{"upstream", "blackhole"}}),
            1);
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_attempts_total", {{"upstream", "refused-a"}}),
            1);
  EXPECT_FALSE(metric_exists(relay.metrics_text(), "portrelay_upstream_connect_failures_total",
                             {{"reason", "cooling_down"}}));
  EXPECT_EQ(relay.metric("portrelay_messages_total", {{"result", "deferred"}}), 2);
}

// A RacingSelector on its own loop thread over a loopback chain, as the spool will hold it.
// `selections` run back to back from the start, each from the previous one's callback.
class ChainSelector {
 public:
  struct Outcome {
    std::optional<std::size_t> winner;
    std::vector<FailureReason> reasons;
    bool all_cooling_down_after = false;
    Ms took{};  // from select() to the callback
  };

  ChainSelector(const std::string& toml, bool recovery, int selections)
      : config_(config::parse_config(toml, "test.toml")) {
    thread_.start([this, recovery, selections](net::Loop& loop) {
      metrics_ = std::make_unique<metrics::Metrics>(config_.chain, "test");
      selector_ = std::make_shared<relay::RacingSelector>(
          loop, relay::build_endpoint_runtimes(config_), relay::timeouts_from(config_.relay),
          "relay.test", relay::RacingOptions::from(config_.relay), *metrics_);
      selector_->set_recovery_probing(recovery);
      selector_->set_on_endpoint_up([this](std::size_t index) {
        std::lock_guard lock(mutex_);
        up_.push_back(index);
        changed_.notify_all();
      });
      select(selections);
      return net::LoopThread::Hooks{.stop =
                                        [this]() {
                                          attempts_.clear();
                                          selector_->shutdown();
                                        },
                                    .teardown =
                                        [this]() {
                                          selector_.reset();
                                          metrics_.reset();
                                        }};
    });
  }
  ~ChainSelector() {
    thread_.stop();
    EXPECT_EQ(thread_.close_status(), 0) << "a handle was left open";
  }

  // Waits until `count` selections finished; their outcomes.
  std::vector<Outcome> wait_for_selections(std::size_t count, Ms timeout) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&]() { return outcomes_.size() >= count; });
    return outcomes_;
  }
  // Waits until an endpoint was reported up (or `timeout`); the indices reported so far.
  std::vector<std::size_t> wait_for_up(Ms timeout) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&]() { return !up_.empty(); });
    return up_;
  }

 private:
  void select(int remaining) {
    if (remaining == 0) return;
    auto started = Clock::now();
    attempts_.push_back(
        selector_->select({}, [this, remaining, started](relay::Selection selection) {
          Outcome outcome;
          outcome.took = since(started);
          for (const auto& failure : selection.failures)
            outcome.reasons.push_back(failure.failure.reason);
          if (selection.connection) outcome.winner = selection.connection->endpoint().index;
          selector_->release(std::move(selection.connection));
          outcome.all_cooling_down_after = selector_->all_cooling_down();
          {
            std::lock_guard lock(mutex_);
            outcomes_.push_back(outcome);
            changed_.notify_all();
          }
          select(remaining - 1);
        }));
  }

  config::Config config_;
  net::LoopThread thread_;
  // Loop thread only:
  std::unique_ptr<metrics::Metrics> metrics_;
  std::shared_ptr<relay::RacingSelector> selector_;
  std::vector<std::unique_ptr<relay::SelectionAttempt>> attempts_;
  // Shared with the test thread:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Outcome> outcomes_;
  std::vector<std::size_t> up_;
};

std::string chain_toml(std::uint16_t first, std::uint16_t second) {
  // probe_interval off: only the recovery probes under test may notice the recovery.
  return "[relay]\nconnect_timeout = \"2s\"\ngreeting_timeout = \"2s\"\nstagger = \"200ms\"\n"
         "cooldown = \"30s\"\nprobe_interval = \"0s\"\n[metrics]\nenabled = false\n" +
         plain_upstream("first", first) + plain_upstream("second", second);
}

// Both endpoints refuse; then the first one starts listening. Only a probe can notice.
struct DeadChain {
  RefusedPort second;                         // refused for the whole test
  std::uint16_t first_port = refused_port();  // nothing listens until the test says so
};

TEST(RecoveryProbing, ReportsAnEndpointThatCameBackWithinSeconds) {
  DeadChain chain;
  ChainSelector selector(chain_toml(chain.first_port, chain.second.port()), /*recovery=*/true,
                         /*selections=*/1);
  auto outcomes = selector.wait_for_selections(1, 5s);
  ASSERT_EQ(outcomes.size(), 1u);
  ASSERT_FALSE(outcomes[0].winner);
  EXPECT_EQ(outcomes[0].reasons,
            (std::vector<FailureReason>{FailureReason::Refused, FailureReason::Refused}));
  EXPECT_TRUE(outcomes[0].all_cooling_down_after);

  auto started = Clock::now();
  FakeUpstream back({.port = chain.first_port});
  auto up = selector.wait_for_up(5s);
  Ms took = since(started);
  ASSERT_EQ(up, std::vector<std::size_t>{0}) << "no endpoint reported up within 5 s";
  EXPECT_LT(took, 5s);
  std::printf("[ measured ] endpoint reported up %lld ms after it came back\n",
              static_cast<long long>(took.count()));
  EXPECT_GE(back.connection_count(), 1u);
}

TEST(RecoveryProbing, WithoutItTheCooldownHoldsAndNothingIsReported) {
  DeadChain chain;
  ChainSelector selector(chain_toml(chain.first_port, chain.second.port()), /*recovery=*/false,
                         /*selections=*/1);
  ASSERT_EQ(selector.wait_for_selections(1, 5s).size(), 1u);
  FakeUpstream back({.port = chain.first_port});
  EXPECT_TRUE(selector.wait_for_up(3s).empty());
  EXPECT_EQ(back.connection_count(), 0u) << "probed during the 30 s cool-down";
}

// Every endpoint is cooling down, so the second selection would be abandoned after a
// stagger; the first endpoint recovered and answers at once: it wins, and is reported up.
TEST(RecoveryRace, ARecoveredEndpointStillWinsAndIsReportedUp) {
  FakeUpstream first;
  first.set_override(SmtpStage::kGreeting, StageAction::reply_with("554 5.3.2 busy").only(1));
  RefusedPort second;
  ChainSelector selector(chain_toml(first.port(), second.port()), /*recovery=*/false,
                         /*selections=*/2);
  auto outcomes = selector.wait_for_selections(2, 5s);
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_FALSE(outcomes[0].winner);
  EXPECT_EQ(outcomes[0].reasons,
            (std::vector<FailureReason>{FailureReason::GreetingRejected, FailureReason::Refused}));
  EXPECT_TRUE(outcomes[0].all_cooling_down_after);
  EXPECT_EQ(outcomes[1].winner, std::optional<std::size_t>(0));
  EXPECT_TRUE(outcomes[1].reasons.empty());
  EXPECT_FALSE(outcomes[1].all_cooling_down_after);
  EXPECT_EQ(selector.wait_for_up(2s), std::vector<std::size_t>{0});
}

// An abandoned race reports the real failures it saw and each endpoint it gave up on.
TEST(RecoveryRace, AbandonedRaceListsEachSkippedEndpoint) {
  FakeUpstream first;
  first.set_override(SmtpStage::kGreeting, StageAction::reply_with("554 5.3.2 busy"));
  BlackholePort second;
  ChainSelector selector(chain_toml(first.port(), second.port()), /*recovery=*/false,
                         /*selections=*/2);
  auto outcomes = selector.wait_for_selections(2, 10s);
  ASSERT_EQ(outcomes.size(), 2u);
  // First: 554 at once, then the blackhole's whole connect_timeout (2 s).
  EXPECT_EQ(outcomes[0].reasons,
            (std::vector<FailureReason>{FailureReason::GreetingRejected, FailureReason::Timeout}));
  EXPECT_GE(outcomes[0].took, 1500ms);
  // Second: the first endpoint still answered (554 again), a real failure; the blackhole
  // was started at once and given up at the deadline, one stagger (200 ms) in.
  EXPECT_FALSE(outcomes[1].winner);
  EXPECT_EQ(outcomes[1].reasons, (std::vector<FailureReason>{FailureReason::GreetingRejected,
                                                             FailureReason::CoolingDown}));
  EXPECT_LT(outcomes[1].took, 1s);
  EXPECT_TRUE(selector.wait_for_up(300ms).empty());
}

}  // namespace
}  // namespace portrelay::test
