// UpstreamGate is pure: every test drives it with a fake time base, like HealthTable.
#include "portrelay/relay/upstream_gate.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace portrelay::relay {
namespace {

using namespace std::chrono_literals;
using TimePoint = UpstreamGate::TimePoint;
using Ms = std::chrono::milliseconds;

// An arbitrary, fixed origin: nothing here may depend on the real clock.
const TimePoint kT0 = TimePoint{} + std::chrono::hours(100);

GateLimits rate(double per_second, std::size_t burst = 0) {
  GateLimits limits;
  limits.max_message_rate = per_second;
  limits.max_message_burst = burst;
  return limits;
}

Ms wait_of(const UpstreamGate& gate, TimePoint now, bool idle = false) {
  auto at = gate.message_wait(now, idle);
  if (!at) return Ms(0);
  return std::chrono::duration_cast<Ms>(*at - now);
}

TEST(UpstreamGate, WithoutLimitsEveryMessageMayStartAtOnce) {
  UpstreamGate gate(GateLimits{}, kT0);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_FALSE(gate.message_wait(kT0, false).has_value());
    gate.start_message(kT0);
    gate.connection_opened();
  }
  EXPECT_TRUE(gate.may_connect());
}

TEST(UpstreamGate, ByDefaultMessagesAreEvenlySpaced) {
  UpstreamGate gate(rate(20), kT0);  // burst: 1
  EXPECT_FALSE(gate.message_wait(kT0, false).has_value());
  gate.start_message(kT0);
  EXPECT_EQ(wait_of(gate, kT0), 50ms);
  EXPECT_DOUBLE_EQ(gate.tokens(kT0 + 10s), 1.0);
}

TEST(UpstreamGate, RateBucketHoldsTheBurstThenPacesExactly) {
  UpstreamGate gate(rate(20, 20), kT0);
  for (int i = 0; i < 20; ++i) {
    ASSERT_FALSE(gate.message_wait(kT0, false).has_value()) << i;
    gate.start_message(kT0);
  }
  // The 21st waits exactly one token's time: 50 ms.
  EXPECT_EQ(wait_of(gate, kT0), 50ms);
  EXPECT_EQ(wait_of(gate, kT0 + 20ms), 30ms);
  EXPECT_FALSE(gate.message_wait(kT0 + 50ms, false).has_value());
  gate.start_message(kT0 + 50ms);
  EXPECT_EQ(wait_of(gate, kT0 + 50ms), 50ms);
  // Over 10 s at most 20 + 200 messages can start.
  int started = 21;
  for (TimePoint t = kT0 + 50ms; t <= kT0 + 10s; t += 1ms) {
    while (!gate.message_wait(t, false)) {
      gate.start_message(t);
      ++started;
    }
  }
  EXPECT_EQ(started, 20 + 200);
}

TEST(UpstreamGate, SlowRatesAndAnExplicitBurst) {
  UpstreamGate per_minute(rate(30.0 / 60.0), kT0);  // "30/min"
  per_minute.start_message(kT0);
  EXPECT_EQ(wait_of(per_minute, kT0), 2000ms);
  UpstreamGate burst(rate(14, 3), kT0);
  for (int i = 0; i < 3; ++i) burst.start_message(kT0);
  EXPECT_EQ(wait_of(burst, kT0), Ms(72));          // 1/14 s, rounded up to the millisecond
  EXPECT_DOUBLE_EQ(burst.tokens(kT0 + 10s), 3.0);  // never more than the burst
}

TEST(UpstreamGate, RefundGivesTheTokenBack) {
  UpstreamGate gate(rate(1), kT0);
  gate.start_message(kT0);
  EXPECT_EQ(wait_of(gate, kT0), 1000ms);
  gate.refund_message(kT0);
  EXPECT_FALSE(gate.message_wait(kT0, false).has_value());
}

TEST(UpstreamGate, ConnectionCapCountsEveryConnection) {
  GateLimits limits;
  limits.max_connections = 3;
  UpstreamGate gate(limits, kT0);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(gate.may_connect());
    gate.connection_opened();
  }
  EXPECT_FALSE(gate.may_connect());
  EXPECT_EQ(gate.message_wait(kT0, false), UpstreamGate::kWhenConnectionFrees);
  // An idle pooled connection needs no new one.
  EXPECT_FALSE(gate.message_wait(kT0, true).has_value());
  gate.connection_closed();
  EXPECT_TRUE(gate.may_connect());
  EXPECT_EQ(gate.connections(), 2u);
}

TEST(UpstreamGate, ThrottlePausesAndDoublesUpToTheMaximum) {
  UpstreamGate gate(GateLimits{}, kT0);  // 60 s doubling to 10 min
  gate.throttled(kT0, PauseKind::Throttle);
  EXPECT_TRUE(gate.paused(kT0 + 59s));
  EXPECT_EQ(wait_of(gate, kT0), 60000ms);
  EXPECT_FALSE(gate.paused(kT0 + 60s));
  TimePoint t = kT0 + 60s;
  std::vector<Ms> pauses;
  for (int i = 0; i < 6; ++i) {
    gate.throttled(t, PauseKind::Throttle);
    pauses.push_back(std::chrono::duration_cast<Ms>(gate.paused_until() - t));
    t = gate.paused_until();
  }
  EXPECT_EQ(pauses, std::vector<Ms>({120s, 240s, 480s, 600s, 600s, 600s}));
  // A delivery ends the run: the next throttle is 60 s again.
  gate.delivered();
  gate.throttled(t, PauseKind::Throttle);
  EXPECT_EQ(std::chrono::duration_cast<Ms>(gate.paused_until() - t), 60000ms);
  EXPECT_EQ(gate.pause_kind(), PauseKind::Throttle);
}

TEST(UpstreamGate, ThrottlesOfMessagesInFlightDuringAPauseAreThatPause) {
  UpstreamGate gate(GateLimits{}, kT0);
  gate.throttled(kT0, PauseKind::Throttle);
  const TimePoint until = gate.paused_until();
  for (int i = 0; i < 5; ++i) gate.throttled(kT0 + 10ms, PauseKind::Throttle);
  EXPECT_EQ(gate.paused_until(), until);
  EXPECT_FALSE(gate.refused(kT0 + 1s));
  EXPECT_FALSE(gate.refused(kT0 + 1s));
  EXPECT_FALSE(gate.refused(kT0 + 1s));  // the third refusal: already paused
  EXPECT_EQ(gate.paused_until(), until);
  // The next throttle after the pause doubles it.
  gate.throttled(until, PauseKind::Throttle);
  EXPECT_EQ(std::chrono::duration_cast<Ms>(gate.paused_until() - until), 120000ms);
  // A quota reply turns a throttle pause into a quota one.
  gate.throttled(until + 1s, PauseKind::Quota);
  EXPECT_EQ(gate.pause_kind(), PauseKind::Quota);
  EXPECT_EQ(std::chrono::duration_cast<Ms>(gate.paused_until() - (until + 1s)), Ms(3600000));
}

TEST(UpstreamGate, QuotaPausesForQuotaBackoffOrUntilTheWindowAllows) {
  UpstreamGate gate(GateLimits{}, kT0);
  gate.throttled(kT0, PauseKind::Quota);
  EXPECT_EQ(wait_of(gate, kT0), Ms(3600000));
  UpstreamGate known(GateLimits{}, kT0);
  known.throttled(kT0, PauseKind::Quota, kT0 + 90s);
  EXPECT_EQ(wait_of(known, kT0), 90000ms);
  EXPECT_EQ(known.pause_kind(), PauseKind::Quota);
}

TEST(UpstreamGate, ConsecutiveRefusalsPauseLikeAThrottleButOneAmongSuccessesDoesNot) {
  UpstreamGate gate(GateLimits{}, kT0);  // max_consecutive_refusals = 3
  EXPECT_FALSE(gate.refused(kT0));
  gate.delivered();
  EXPECT_FALSE(gate.refused(kT0));
  EXPECT_FALSE(gate.refused(kT0));
  gate.delivered();
  EXPECT_FALSE(gate.paused(kT0));
  EXPECT_FALSE(gate.refused(kT0));
  EXPECT_FALSE(gate.refused(kT0));
  EXPECT_TRUE(gate.refused(kT0));
  EXPECT_TRUE(gate.paused(kT0 + 59s));
  EXPECT_EQ(gate.pause_kind(), PauseKind::Refusals);
  GateLimits never;
  never.max_consecutive_refusals = 0;
  UpstreamGate off(never, kT0);
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(off.refused(kT0));
}

TEST(UpstreamGate, PauseAndRateTogetherWaitForTheLaterOfTheTwo) {
  UpstreamGate gate(rate(1), kT0);
  gate.start_message(kT0);
  gate.throttled(kT0, PauseKind::Throttle);
  EXPECT_EQ(wait_of(gate, kT0), 60000ms);
  EXPECT_FALSE(gate.message_wait(kT0 + 60s, false).has_value());
}

}  // namespace
}  // namespace portrelay::relay
