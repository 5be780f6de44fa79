// HealthTable is pure: every test drives it with a fake time base and a fixed jitter factor.
#include "portrelay/relay/health_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace portrelay::relay {
namespace {

using namespace std::chrono_literals;
using State = HealthTable::State;
using TimePoint = HealthTable::TimePoint;
using Ms = std::chrono::milliseconds;
using Order = std::vector<std::size_t>;

// An arbitrary, fixed origin: nothing here may depend on the real clock.
const TimePoint kT0 = TimePoint{} + std::chrono::hours(100);

HealthTable::Jitter fixed(double factor) {
  return [factor]() { return factor; };
}

Ms cooldown_left(const HealthTable& table, std::size_t index, TimePoint now) {
  return std::chrono::duration_cast<Ms>(table.entry(index).cooldown_until - now);
}

TEST(HealthTableCooldown, FreshTableIsUnknownAndNotCooling) {
  HealthTable table(3, 100ms, 1s, fixed(1.0));
  ASSERT_EQ(table.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(table.entry(i).state, State::Unknown);
    EXPECT_EQ(table.entry(i).consecutive_failures, 0u);
    EXPECT_FALSE(table.entry(i).last_failure.has_value());
    EXPECT_FALSE(table.entry(i).probing);
    EXPECT_FALSE(table.cooling_down(i, kT0));
  }
}

TEST(HealthTableCooldown, DoublesPerConsecutiveFailureUpToTheCap) {
  HealthTable table(1, 100ms, 1000ms, fixed(1.0));
  const std::vector<Ms> expected = {100ms, 200ms, 400ms, 800ms, 1000ms, 1000ms};
  for (std::size_t n = 0; n < expected.size(); ++n) {
    TimePoint now = kT0 + Ms(10'000 * n);
    table.record_failure(0, FailureReason::Timeout, now);
    EXPECT_EQ(table.entry(0).consecutive_failures, n + 1);
    EXPECT_EQ(cooldown_left(table, 0, now), expected[n]) << "failure " << n + 1;
  }
}

TEST(HealthTableCooldown, ManyFailuresStayAtTheCapWithoutOverflow) {
  HealthTable table(1, 30s, 10min, fixed(1.0));
  for (int n = 0; n < 100; ++n) table.record_failure(0, FailureReason::Refused, kT0);
  EXPECT_EQ(table.entry(0).consecutive_failures, 100u);
  EXPECT_EQ(cooldown_left(table, 0, kT0), Ms(10min));
}

TEST(HealthTableCooldown, CoolingEndsExactlyAtCooldownUntil) {
  HealthTable table(1, 100ms, 1s, fixed(1.0));
  table.record_failure(0, FailureReason::Refused, kT0);
  EXPECT_TRUE(table.cooling_down(0, kT0));
  EXPECT_TRUE(table.cooling_down(0, kT0 + 99ms));
  EXPECT_FALSE(table.cooling_down(0, kT0 + 100ms));
  EXPECT_FALSE(table.cooling_down(0, kT0 + 5s));
}

TEST(HealthTableCooldown, JitterScalesTheCooldown) {
  HealthTable low(1, 100ms, 10s, fixed(0.8));
  HealthTable high(1, 100ms, 10s, fixed(1.2));
  low.record_failure(0, FailureReason::Timeout, kT0);
  high.record_failure(0, FailureReason::Timeout, kT0);
  EXPECT_EQ(cooldown_left(low, 0, kT0), 80ms);
  EXPECT_EQ(cooldown_left(high, 0, kT0), 120ms);
  low.record_failure(0, FailureReason::Timeout, kT0);
  high.record_failure(0, FailureReason::Timeout, kT0);
  EXPECT_EQ(cooldown_left(low, 0, kT0), 160ms);
  EXPECT_EQ(cooldown_left(high, 0, kT0), 240ms);
}

// The cap bounds the doubling; jitter then spreads relays around it (so the longest
// cool-down is 1.2 * cooldown_max). This pins that reading of "capped, with jitter".
TEST(HealthTableCooldown, JitterAppliesAroundTheCap) {
  HealthTable low(1, 100ms, 300ms, fixed(0.8));
  HealthTable high(1, 100ms, 300ms, fixed(1.2));
  for (int n = 0; n < 5; ++n) {
    low.record_failure(0, FailureReason::Timeout, kT0);
    high.record_failure(0, FailureReason::Timeout, kT0);
  }
  EXPECT_EQ(cooldown_left(low, 0, kT0), 240ms);
  EXPECT_EQ(cooldown_left(high, 0, kT0), 360ms);
}

TEST(HealthTableCooldown, DefaultJitterStaysWithinTwentyPercent) {
  Ms shortest = Ms::max(), longest = Ms::zero();
  for (int i = 0; i < 200; ++i) {
    HealthTable table(1, 1000ms, 10s);  // default: random jitter
    table.record_failure(0, FailureReason::Timeout, kT0);
    Ms left = cooldown_left(table, 0, kT0);
    shortest = std::min(shortest, left);
    longest = std::max(longest, left);
  }
  EXPECT_GE(shortest, 800ms);
  EXPECT_LE(longest, 1200ms);
  EXPECT_LT(shortest, longest) << "jitter should vary between tables";
}

TEST(HealthTableCooldown, FailureMarksDownAndRemembersReason) {
  HealthTable table(2, 100ms, 1s, fixed(1.0));
  table.record_failure(1, FailureReason::TlsVerify, kT0);
  EXPECT_EQ(table.entry(1).state, State::Down);
  EXPECT_EQ(table.entry(1).last_failure, FailureReason::TlsVerify);
  EXPECT_EQ(table.entry(0).state, State::Unknown);
  EXPECT_FALSE(table.cooling_down(0, kT0));
  table.record_failure(1, FailureReason::Refused, kT0 + 1s);
  EXPECT_EQ(table.entry(1).last_failure, FailureReason::Refused);
}

TEST(HealthTableCooldown, SuccessResetsFailuresAndCooldown) {
  HealthTable table(1, 100ms, 10s, fixed(1.0));
  for (int n = 0; n < 3; ++n) table.record_failure(0, FailureReason::Timeout, kT0);
  ASSERT_EQ(cooldown_left(table, 0, kT0), 400ms);
  table.record_success(0);
  EXPECT_EQ(table.entry(0).state, State::Up);
  EXPECT_EQ(table.entry(0).consecutive_failures, 0u);
  EXPECT_FALSE(table.entry(0).last_failure.has_value());
  EXPECT_FALSE(table.cooling_down(0, kT0));
  // The next failure starts again from the base length.
  table.record_failure(0, FailureReason::Timeout, kT0);
  EXPECT_EQ(cooldown_left(table, 0, kT0), 100ms);
}

TEST(HealthTableSuspect, CoolsDownWithoutMarkingDown) {
  HealthTable table(1, 100ms, 10s, fixed(1.0));
  table.record_suspect(0, kT0);
  EXPECT_EQ(table.entry(0).state, State::Unknown);
  EXPECT_FALSE(table.entry(0).last_failure.has_value());
  EXPECT_TRUE(table.cooling_down(0, kT0 + 99ms));
  EXPECT_FALSE(table.cooling_down(0, kT0 + 100ms));
  // Repeated suspicion backs off like failures do.
  table.record_suspect(0, kT0);
  EXPECT_EQ(cooldown_left(table, 0, kT0), 200ms);
}

TEST(HealthTableSuspect, UpEndpointBecomesUnknownDownStaysDown) {
  HealthTable table(2, 100ms, 10s, fixed(1.0));
  table.record_success(0);
  table.record_suspect(0, kT0);
  EXPECT_EQ(table.entry(0).state, State::Unknown);
  EXPECT_TRUE(table.cooling_down(0, kT0));

  table.record_failure(1, FailureReason::Timeout, kT0);
  table.record_suspect(1, kT0);
  EXPECT_EQ(table.entry(1).state, State::Down);
  EXPECT_EQ(table.entry(1).last_failure, FailureReason::Timeout);
  EXPECT_EQ(table.entry(1).consecutive_failures, 2u);
}

TEST(HealthTablePreference, ChainOrderWhenAllHealthy) {
  HealthTable table(4, 100ms, 10s, fixed(1.0));
  EXPECT_EQ(table.preference_order(kT0), (Order{0, 1, 2, 3}));
}

TEST(HealthTablePreference, CoolingEndpointsGoLastInChainOrder) {
  HealthTable table(4, 100ms, 10s, fixed(1.0));
  table.record_failure(2, FailureReason::Refused, kT0);
  table.record_failure(0, FailureReason::Timeout, kT0);
  table.record_suspect(3, kT0);
  EXPECT_EQ(table.preference_order(kT0 + 50ms), (Order{1, 0, 2, 3}));
  // Once the cool-down is over, chain order is restored.
  EXPECT_EQ(table.preference_order(kT0 + 100ms), (Order{0, 1, 2, 3}));
}

TEST(HealthTablePreference, LongerCooldownDoesNotReorderCoolingEndpoints) {
  HealthTable table(3, 100ms, 10s, fixed(1.0));
  table.record_failure(0, FailureReason::Timeout, kT0);
  table.record_failure(0, FailureReason::Timeout, kT0);  // 200ms
  table.record_failure(1, FailureReason::Timeout, kT0);  // 100ms
  table.record_failure(2, FailureReason::Timeout, kT0);
  EXPECT_EQ(table.preference_order(kT0), (Order{0, 1, 2}));  // all cooling: still tried
  EXPECT_EQ(table.preference_order(kT0 + 150ms), (Order{1, 2, 0}));
}

TEST(HealthTablePreference, ProbingEndpointsGoLast) {
  HealthTable table(3, 100ms, 10s, fixed(1.0));
  table.set_probing(0, true);
  EXPECT_EQ(table.preference_order(kT0), (Order{1, 2, 0}));
  table.set_probing(0, false);
  EXPECT_EQ(table.preference_order(kT0), (Order{0, 1, 2}));
}

TEST(HealthTableProbe, NothingDueWithoutFailures) {
  HealthTable table(3, 100ms, 10s, fixed(1.0));
  EXPECT_TRUE(table.due_for_probe(kT0).empty());
  table.record_success(1);
  EXPECT_TRUE(table.due_for_probe(kT0).empty());
}

TEST(HealthTableProbe, OnlyFailedEndpointsPreferredToTheBestUpOneAfterCooldown) {
  HealthTable table(5, 100ms, 10s, fixed(1.0));
  table.record_failure(0, FailureReason::Timeout, kT0);
  table.record_failure(1, FailureReason::Refused, kT0);
  table.record_success(3);
  table.record_failure(4, FailureReason::Refused, kT0);  // after the best: never probed
  // 2 never failed (Unknown): nothing to find out about it.
  EXPECT_TRUE(table.due_for_probe(kT0 + 99ms).empty());
  EXPECT_EQ(table.due_for_probe(kT0 + 100ms), (Order{0, 1}));
}

TEST(HealthTableProbe, WaitsForEachEndpointsOwnCooldown) {
  HealthTable table(3, 100ms, 10s, fixed(1.0));
  table.record_failure(0, FailureReason::Timeout, kT0);
  table.record_failure(0, FailureReason::Timeout, kT0);  // 200ms
  table.record_failure(1, FailureReason::Timeout, kT0);  // 100ms
  table.record_success(2);
  EXPECT_EQ(table.due_for_probe(kT0 + 150ms), (Order{1}));
  EXPECT_EQ(table.due_for_probe(kT0 + 200ms), (Order{0, 1}));
}

TEST(HealthTableProbe, SkipsEndpointsAlreadyProbing) {
  HealthTable table(3, 100ms, 10s, fixed(1.0));
  table.record_failure(0, FailureReason::Timeout, kT0);
  table.record_failure(1, FailureReason::Timeout, kT0);
  table.record_success(2);
  table.set_probing(0, true);
  EXPECT_EQ(table.due_for_probe(kT0 + 1s), (Order{1}));
  table.set_probing(0, false);
  EXPECT_EQ(table.due_for_probe(kT0 + 1s), (Order{0, 1}));
}

TEST(HealthTableProbe, SuspectEndpointIsProbedAfterCooldown) {
  HealthTable table(2, 100ms, 10s, fixed(1.0));
  table.record_suspect(0, kT0);
  table.record_success(1);
  EXPECT_TRUE(table.due_for_probe(kT0 + 50ms).empty());
  EXPECT_EQ(table.due_for_probe(kT0 + 100ms), (Order{0}));
}

TEST(HealthTableProbe, WithNoEndpointUpEveryFailedOneIsDue) {
  HealthTable table(3, 100ms, 10s, fixed(1.0));
  table.record_failure(0, FailureReason::Timeout, kT0);
  table.record_failure(2, FailureReason::Refused, kT0);
  EXPECT_EQ(table.due_for_probe(kT0 + 100ms), (Order{0, 2}));
}

TEST(HealthTableProbe, SuspectedBestEndpointNoLongerCountsAsUp) {
  // 1 was up, then lost a race (suspect): 2 is now the best known-up endpoint, so a failed
  // 0 and, once cooled down, 1 itself are probe candidates.
  HealthTable table(3, 100ms, 10s, fixed(1.0));
  table.record_failure(0, FailureReason::Timeout, kT0);
  table.record_success(1);
  table.record_success(2);
  EXPECT_EQ(table.due_for_probe(kT0 + 100ms), (Order{0}));
  table.record_suspect(1, kT0 + 100ms);
  EXPECT_EQ(table.due_for_probe(kT0 + 150ms), (Order{0}));
  EXPECT_EQ(table.due_for_probe(kT0 + 200ms), (Order{0, 1}));
}

TEST(HealthTableProbe, SuccessAfterProbeRemovesTheCandidate) {
  HealthTable table(2, 100ms, 10s, fixed(1.0));
  table.record_failure(0, FailureReason::GreetingRejected, kT0);
  table.record_success(1);
  ASSERT_EQ(table.due_for_probe(kT0 + 100ms), (Order{0}));
  table.set_probing(0, true);
  EXPECT_TRUE(table.due_for_probe(kT0 + 100ms).empty());
  table.set_probing(0, false);
  table.record_success(0);
  EXPECT_TRUE(table.due_for_probe(kT0 + 100ms).empty());
  EXPECT_EQ(table.preference_order(kT0 + 100ms), (Order{0, 1}));
}

// Recovery mode (the spool holds deferred mail): a down endpoint is probed long before its
// 30 s cool-down ends, on its own schedule: recovery.first after a failure, doubling per
// consecutive failure up to recovery.max, with the table's jitter.
const RecoverySchedule kRecovery{1s, 10s};

Ms next_probe_in(const HealthTable& table, std::size_t index, TimePoint now) {
  return std::chrono::duration_cast<Ms>(table.entry(index).next_probe - now);
}

TEST(HealthTableRecovery, IntervalIsAThirtiethOfTheOutageBetweenFirstAndMax) {
  HealthTable table(1, 30s, 10min, fixed(1.0), kRecovery);
  TimePoint now = kT0;
  Ms longest_in_first_minute{0};
  for (int n = 0; n < 200; ++n) {
    table.record_failure(0, FailureReason::Refused, now);
    const Ms interval = next_probe_in(table, 0, now);
    const Ms outage = std::chrono::duration_cast<Ms>(now - kT0);
    EXPECT_EQ(interval, std::clamp(outage / 30, Ms(1s), Ms(10s))) << "after " << outage.count();
    EXPECT_TRUE(table.due_for_probe(now + interval - 1ms, true).empty());
    EXPECT_EQ(table.due_for_probe(now + interval, true), (Order{0}));
    // Ordinary probing still waits for the cool-down (30 s and more).
    EXPECT_TRUE(table.due_for_probe(now + interval).empty());
    if (outage < 60s) longest_in_first_minute = std::max(longest_in_first_minute, interval);
    now += interval;  // the probe ran and failed again
  }
  // An outage under a minute is noticed within 2 s of its end; any within 10 s.
  EXPECT_LE(longest_in_first_minute, 2s);
  EXPECT_EQ(next_probe_in(table, 0, now - 10s), 10s);
}

TEST(HealthTableRecovery, JitterScalesTheRecoveryInterval) {
  HealthTable low(1, 30s, 10min, fixed(0.8), kRecovery);
  HealthTable high(1, 30s, 10min, fixed(1.2), kRecovery);
  low.record_failure(0, FailureReason::Timeout, kT0);
  high.record_failure(0, FailureReason::Timeout, kT0);
  EXPECT_EQ(next_probe_in(low, 0, kT0), 800ms);
  EXPECT_EQ(next_probe_in(high, 0, kT0), 1200ms);
  high.record_failure(0, FailureReason::Timeout, kT0 + 10min);
  EXPECT_EQ(next_probe_in(high, 0, kT0 + 10min), 12s) << "jitter applies around the cap";
}

TEST(HealthTableRecovery, DefaultScheduleIsOneSecondToTenSeconds) {
  HealthTable table(1, 30s, 10min, fixed(1.0));
  table.record_failure(0, FailureReason::Refused, kT0);
  EXPECT_EQ(next_probe_in(table, 0, kT0), 1s);
  table.record_failure(0, FailureReason::Refused, kT0 + 1h);
  EXPECT_EQ(next_probe_in(table, 0, kT0 + 1h), 10s);
}

TEST(HealthTableRecovery, SuspectEndpointIsOnTheScheduleToo) {
  HealthTable table(2, 30s, 10min, fixed(1.0), kRecovery);
  table.record_suspect(0, kT0);
  table.record_success(1);
  EXPECT_TRUE(table.due_for_probe(kT0 + 999ms, true).empty());
  EXPECT_EQ(table.due_for_probe(kT0 + 1s, true), (Order{0}));
}

TEST(HealthTableRecovery, OnlyDownEndpointsPreferredToTheBestUpOne) {
  HealthTable table(4, 30s, 10min, fixed(1.0), kRecovery);
  table.record_failure(0, FailureReason::Timeout, kT0);
  table.record_success(2);
  table.record_failure(3, FailureReason::Refused, kT0);  // after the best: left alone
  // 1 never failed: nothing to find out.
  EXPECT_EQ(table.due_for_probe(kT0 + 1s, true), (Order{0}));
}

TEST(HealthTableRecovery, NeverTwoProbesAtOnce) {
  HealthTable table(2, 30s, 10min, fixed(1.0), kRecovery);
  table.record_failure(0, FailureReason::Timeout, kT0);
  table.record_failure(1, FailureReason::Timeout, kT0);
  table.set_probing(0, true);
  EXPECT_EQ(table.due_for_probe(kT0 + 5s, true), (Order{1}));
  table.set_probing(0, false);
  EXPECT_EQ(table.due_for_probe(kT0 + 5s, true), (Order{0, 1}));
}

TEST(HealthTableRecovery, SuccessTakesTheEndpointOffTheSchedule) {
  HealthTable table(1, 30s, 10min, fixed(1.0), kRecovery);
  table.record_failure(0, FailureReason::Refused, kT0);
  table.record_success(0);
  EXPECT_EQ(table.entry(0).next_probe, TimePoint{});
  EXPECT_TRUE(table.due_for_probe(kT0 + 1min, true).empty());
  // The next failure starts the schedule over at recovery.first.
  table.record_failure(0, FailureReason::Refused, kT0 + 1min);
  EXPECT_EQ(next_probe_in(table, 0, kT0 + 1min), 1s);
}

TEST(HealthTableAvailability, AllUnavailableCountsCoolingAndProbingAndHonoursExclude) {
  HealthTable table(3, 100ms, 10s, fixed(1.0));
  EXPECT_FALSE(table.all_unavailable(kT0));
  table.record_failure(0, FailureReason::Timeout, kT0);
  table.record_failure(1, FailureReason::Refused, kT0);
  EXPECT_FALSE(table.all_unavailable(kT0)) << "2 is available";
  EXPECT_TRUE(table.all_unavailable(kT0, {2}));
  table.set_probing(2, true);
  EXPECT_TRUE(table.all_unavailable(kT0));
  EXPECT_TRUE(table.unavailable(2, kT0));
  EXPECT_FALSE(table.all_unavailable(kT0 + 100ms)) << "0 and 1 cooled down";
  EXPECT_FALSE(table.all_unavailable(kT0, {0, 1, 2})) << "nothing left: nothing to say";
}

EndpointIdentity id(const std::string& host, std::uint16_t port, TlsMode tls = TlsMode::StartTls) {
  return {host, port, tls};
}

// A reload builds a new table for the new chain: entries follow the identity (host, port,
// TLS mode), not the position, and new endpoints start unknown.
TEST(HealthTableIdentity, NewTableInheritsEntriesByIdentityNotByIndex) {
  HealthTable old({id("a", 587), id("b", 587), id("c", 25)}, 100ms, 10s, fixed(1.0));
  old.record_failure(0, FailureReason::Refused, kT0);  // a:587 cooling until kT0+100ms
  old.record_failure(0, FailureReason::Refused, kT0);  // second failure: until kT0+200ms
  old.record_success(1);
  old.set_probing(0, true);

  // Reordered, c removed, d added, and b now with another TLS mode (another endpoint).
  HealthTable next({id("d", 2525), id("b", 587, TlsMode::Implicit), id("a", 587)}, 100ms, 10s,
                   fixed(1.0));
  next.inherit(old);
  EXPECT_EQ(next.entry(0).state, State::Unknown);
  EXPECT_EQ(next.entry(1).state, State::Unknown);
  EXPECT_EQ(next.entry(2).state, State::Down);
  EXPECT_EQ(next.entry(2).consecutive_failures, 2u);
  EXPECT_EQ(next.entry(2).last_failure, FailureReason::Refused);
  EXPECT_EQ(cooldown_left(next, 2, kT0), 200ms);
  EXPECT_FALSE(next.entry(2).probing) << "the probe belongs to the old table";
  EXPECT_EQ(next.preference_order(kT0 + 50ms), (Order{0, 1, 2}));
  EXPECT_EQ(next.find(id("c", 25)), nullptr);
  // The old table is left as it was: sessions still using it keep their view.
  EXPECT_TRUE(old.entry(0).probing);
}

TEST(HealthTableIdentity, FreshIdentitiesStartOver) {
  HealthTable old({id("a", 587), id("b", 587)}, 100ms, 10s, fixed(1.0));
  old.record_failure(0, FailureReason::AuthFailed, kT0);
  old.record_failure(1, FailureReason::Timeout, kT0);
  HealthTable next({id("a", 587), id("b", 587)}, 100ms, 10s, fixed(1.0));
  next.inherit(old, {id("a", 587)});  // a's credentials changed: the fix may be in them
  EXPECT_EQ(next.entry(0).state, State::Unknown);
  EXPECT_FALSE(next.cooling_down(0, kT0));
  EXPECT_EQ(next.entry(1).state, State::Down);
  EXPECT_TRUE(next.cooling_down(1, kT0));
}

TEST(HealthTableIdentity, TheSameUpstreamTwiceInOneChainSharesItsEntry) {
  HealthTable table({id("a", 587), id("a", 587)}, 100ms, 10s, fixed(1.0));
  table.record_failure(0, FailureReason::Refused, kT0);
  EXPECT_TRUE(table.cooling_down(1, kT0));
}

// The refresh schedule: every endpoint is checked at start and then within one interval.
TEST(HealthTableRefresh, OffByDefaultAndWithAZeroInterval) {
  HealthTable table(3, 100ms, 1s, fixed(1.0));
  EXPECT_TRUE(table.due_for_refresh(kT0).empty());
  table.set_refresh_interval(0ms);
  EXPECT_TRUE(table.due_for_refresh(kT0 + 1h).empty());
}

TEST(HealthTableRefresh, EveryEndpointIsDueAtStartUp) {
  HealthTable table(3, 100ms, 1s, fixed(1.0));
  table.set_refresh_interval(60s);
  EXPECT_EQ(table.due_for_refresh(kT0), (Order{0, 1, 2}));
}

TEST(HealthTableRefresh, ACheckMakesTheNextOneDueOneIntervalLater) {
  HealthTable table(2, 100ms, 1s, fixed(1.2));  // the largest jitter: exactly one interval
  table.set_refresh_interval(60s);
  table.checked(0, kT0);
  table.checked(1, kT0 + 10s);
  EXPECT_TRUE(table.due_for_refresh(kT0 + 59'999ms).empty());
  EXPECT_EQ(table.due_for_refresh(kT0 + 60s), (Order{0}));
  EXPECT_EQ(table.due_for_refresh(kT0 + 70s), (Order{0, 1}));
}

TEST(HealthTableRefresh, JitterOnlyEverShortensTheInterval) {
  for (double factor : {0.8, 1.0, 1.2}) {
    HealthTable table(1, 100ms, 1s, fixed(factor));
    table.set_refresh_interval(100s);
    table.checked(0, kT0);
    const auto due = std::chrono::duration_cast<Ms>(table.entry(0).next_refresh - kT0);
    EXPECT_GE(due, 80s) << factor;
    EXPECT_LE(due, 100s) << factor;
  }
  HealthTable low(1, 100ms, 1s, fixed(0.8));
  low.set_refresh_interval(100s);
  low.checked(0, kT0);
  EXPECT_EQ(low.entry(0).next_refresh, kT0 + 80s);
}

TEST(HealthTableRefresh, NotDueWhileAProbeIsRunning) {
  HealthTable table(3, 100ms, 1s, fixed(1.0));
  table.set_refresh_interval(60s);
  table.set_refreshing(0, true);
  table.record_failure(1, FailureReason::Refused, kT0);
  table.set_probing(1, true);  // a fail-back probe
  EXPECT_EQ(table.due_for_refresh(kT0), (Order{2}));
  table.set_refreshing(0, false);
  table.set_probing(1, false);
  EXPECT_EQ(table.due_for_refresh(kT0), (Order{0, 1, 2}));
}

TEST(HealthTableRefresh, ARefreshingEndpointStaysAvailableToMessages) {
  HealthTable table(2, 100ms, 1s, fixed(1.0));
  table.set_refresh_interval(60s);
  table.set_refreshing(0, true);
  EXPECT_FALSE(table.unavailable(0, kT0));
  EXPECT_EQ(table.preference_order(kT0), (Order{0, 1}));
}

TEST(HealthTableRefresh, CoolingDownDoesNotExemptAnEndpoint) {
  HealthTable table(1, 10min, 10min, fixed(1.0));
  table.set_refresh_interval(60s);
  table.record_failure(0, FailureReason::Refused, kT0);
  table.checked(0, kT0);
  EXPECT_TRUE(table.cooling_down(0, kT0 + 60s));
  EXPECT_EQ(table.due_for_refresh(kT0 + 60s), (Order{0}));
}

TEST(HealthTableRefresh, AFailBackProbeIsNotStartedWhileARefreshRuns) {
  HealthTable table(2, 100ms, 1s, fixed(1.0));
  table.set_refresh_interval(60s);
  table.record_failure(0, FailureReason::Refused, kT0);
  table.record_success(1);
  EXPECT_EQ(table.due_for_probe(kT0 + 1s), (Order{0}));
  table.set_refreshing(0, true);
  EXPECT_TRUE(table.due_for_probe(kT0 + 1s).empty());
}

TEST(HealthTableRefresh, TheSameUpstreamTwiceIsProbedOnce) {
  HealthTable table({id("a", 587), id("b", 587), id("a", 587)}, 100ms, 10s, fixed(1.0));
  table.set_refresh_interval(60s);
  EXPECT_EQ(table.due_for_refresh(kT0), (Order{0, 1}));
}

TEST(HealthTableRefresh, AnInheritedEntryKeepsItsScheduleButNotItsProbe) {
  HealthTable old({id("a", 587)}, 100ms, 10s, fixed(1.2));
  old.set_refresh_interval(60s);
  old.checked(0, kT0);
  old.set_refreshing(0, true);
  HealthTable next({id("a", 587), id("b", 587)}, 100ms, 10s, fixed(1.2));
  next.set_refresh_interval(60s);
  next.inherit(old);
  EXPECT_FALSE(next.entry(0).refreshing);
  EXPECT_EQ(next.due_for_refresh(kT0 + 1s), (Order{1})) << "only the new endpoint at once";
  EXPECT_EQ(next.due_for_refresh(kT0 + 60s), (Order{0, 1}));
}

TEST(HealthTableReadiness, UnknownEndpointsAreUsableUntilTheirFirstProbeRuns) {
  HealthTable table(2, 100ms, 1s, fixed(1.0));
  EXPECT_TRUE(table.any_usable(kT0)) << "refresh off: nothing to wait for";
  table.set_refresh_interval(60s);
  table.set_refreshing(0, true);
  table.set_refreshing(1, true);
  EXPECT_FALSE(table.any_usable(kT0)) << "start-up probes running";
  table.set_refreshing(1, false);
  table.record_success(1);
  EXPECT_TRUE(table.any_usable(kT0));
}

TEST(HealthTableReadiness, NoneUsableWhileEveryEndpointCoolsDown) {
  HealthTable table(2, 100ms, 1s, fixed(1.0));
  table.record_failure(0, FailureReason::Refused, kT0);
  EXPECT_TRUE(table.any_usable(kT0));
  table.record_failure(1, FailureReason::Timeout, kT0);
  EXPECT_FALSE(table.any_usable(kT0));
  EXPECT_FALSE(table.any_usable(kT0 + 99ms));
  EXPECT_TRUE(table.any_usable(kT0 + 100ms)) << "a cool-down that ended makes it usable again";
}

TEST(HealthTableReadiness, AnUpEndpointBeingRefreshedStaysUsable) {
  HealthTable table(1, 100ms, 1s, fixed(1.0));
  table.set_refresh_interval(60s);
  table.record_success(0);
  table.set_refreshing(0, true);
  EXPECT_TRUE(table.any_usable(kT0));
}

}  // namespace
}  // namespace portrelay::relay
