// The spool's side of upstream limits (issue #18), pure: DeliveryScheduler holds a due
// message while no upstream's limits allow one (HoldForLimits, with the wait), and settle()
// does not count a throttled attempt toward the backoff. Fake clock; nothing sleeps.
#include <gtest/gtest.h>

#include "portrelay/spool/delivery_plan.hpp"
#include "portrelay/spool/delivery_scheduler.hpp"

namespace portrelay::spool {
namespace {

using namespace std::chrono_literals;
using Kind = DeliveryScheduler::Next::Kind;

constexpr std::int64_t kStart = 1'700'000'000'000;

QueueEntry entry(const std::string& id, std::int64_t arrival) {
  QueueEntry e;
  e.layout.envelope.id = id;
  e.layout.envelope.arrival_ms = arrival;
  e.layout.envelope.recipients.assign(1, "r@example.test");
  e.state.recipients.resize(1);
  e.state.next_attempt_ms = arrival;
  return e;
}

TEST(SpoolLimits, NothingStartsWhileNoUpstreamMayTakeAMessage) {
  std::int64_t now = kStart;
  QueueIndex index;
  DeliveryScheduler::Limits limits;
  limits.max_deliveries = 32;
  DeliveryScheduler scheduler(
      index, Clock{[&now]() { return now; }, []() { return 1.0; }, []() { return 7u; }}, limits);
  index.add(entry("a", kStart));
  index.add(entry("b", kStart));
  const auto never_cooling = []() { return false; };
  int asked = 0;
  std::optional<std::int64_t> wait = 50;
  const auto limit_wait = [&]() {
    ++asked;
    return wait;
  };
  auto held = scheduler.next(0, never_cooling, limit_wait);
  EXPECT_EQ(held.kind, Kind::HoldForLimits);
  EXPECT_EQ(held.wait_ms, 50);
  EXPECT_EQ(asked, 1);
  EXPECT_FALSE(index.find("a")->busy());  // not taken: no attempt bound to be held back
  wait = -1;                              // only a closing connection can make room
  EXPECT_EQ(scheduler.next(0, never_cooling, limit_wait).wait_ms, -1);
  wait.reset();
  auto go = scheduler.next(0, never_cooling, limit_wait);
  EXPECT_EQ(go.kind, Kind::Deliver);
  EXPECT_EQ(go.id, "a");
  // Not asked when nothing is due.
  now = kStart;
  QueueIndex empty;
  DeliveryScheduler idle(
      empty, Clock{[&now]() { return now; }, []() { return 1.0; }, []() { return 7u; }}, limits);
  asked = 0;
  EXPECT_EQ(idle.next(0, never_cooling, limit_wait).kind, Kind::Nothing);
  EXPECT_EQ(asked, 0);
}

TEST(SpoolLimits, AThrottledAttemptIsDueSoonAndDoesNotCountTowardTheBackoff) {
  DeliveryState state;
  state.recipients.resize(1);
  state.attempts = 3;
  AttemptResult throttled;
  throttled.recipients.assign(1, RecipientResult{RecipientVerdict::Transient,
                                                 "454 Throttling failure: Maximum sending rate"});
  throttled.error = "454 Throttling failure";
  throttled.throttled = true;
  const RetryPolicy policy{30s, 20min, 24h};
  Settlement settlement = settle(state, throttled, kStart, kStart - 1000, policy, 1.0);
  EXPECT_FALSE(settlement.finished);
  EXPECT_TRUE(settlement.bounced.empty());
  EXPECT_EQ(settlement.state.attempts, 3u);
  EXPECT_EQ(settlement.state.next_attempt_ms, kStart + 1000);
  throttled.throttled = false;
  Settlement ordinary = settle(state, throttled, kStart, kStart - 1000, policy, 1.0);
  EXPECT_EQ(ordinary.state.attempts, 4u);
  EXPECT_EQ(ordinary.state.next_attempt_ms, kStart + 240000);  // 30 s * 2^3
}

TEST(SpoolLimits, AThrottledReportIsAThrottledAttempt) {
  relay::DeliveryReport report;
  report.outcome = relay::DeliveryOutcome::Throttled;
  report.recipients.resize(1);
  report.recipients[0].outcome = relay::DeliveryOutcome::Throttled;
  AttemptResult result = attempt_result(report, {0}, 1);
  EXPECT_TRUE(result.throttled);
  EXPECT_EQ(result.recipients[0]->verdict, RecipientVerdict::Transient);
}

}  // namespace
}  // namespace portrelay::spool
