// RacePlan under simulated time: staggered starts, max_parallel, failures handing over at
// once, suspects, pooled connections that died while idle, and losing races.
#include "portrelay/relay/race_plan.hpp"

#include <gtest/gtest.h>

namespace portrelay::relay {
namespace {

using namespace std::chrono_literals;
using Lines = std::vector<std::string>;

// A fake clock: time moves only when the test says so.
struct FakeTime {
  RacePlan::TimePoint now{std::chrono::hours(1)};
  std::optional<RacePlan::TimePoint> wake;  // the plan's pending wake-up
  void advance(std::chrono::milliseconds by) { now += by; }
};

Lines text(const RacePlan::Actions& actions, FakeTime& time) {
  Lines out;
  for (const auto& action : actions) {
    if (action.kind == RacePlan::Action::Kind::WakeAt) {
      time.wake = action.at;
      out.push_back(
          "wake +" +
          std::to_string(
              std::chrono::duration_cast<std::chrono::milliseconds>(action.at - time.now).count()) +
          "ms");
    } else {
      out.push_back(to_string(action));
    }
  }
  return out;
}

TEST(RacePlan, FirstCandidateAtOnceTheNextAfterEachStagger) {
  FakeTime time;
  RacePlan plan({0, 1, 2}, 250ms, 3);
  EXPECT_EQ(text(plan.start(time.now), time), Lines({"launch 0", "wake +250ms"}));
  time.advance(250ms);
  EXPECT_EQ(text(plan.stagger_elapsed(time.now), time), Lines({"launch 1", "wake +250ms"}));
  time.advance(250ms);
  EXPECT_EQ(text(plan.stagger_elapsed(time.now), time), Lines({"launch 2"}));
  time.advance(10ms);
  // 2 wins 10 ms after it started; 0 and 1 had a whole stagger: suspect.
  EXPECT_EQ(text(plan.ready(2, time.now), time),
            Lines({"cancel 0 suspect", "cancel 1 suspect", "won 2"}));
  EXPECT_TRUE(plan.finished());
}

TEST(RacePlan, ALoserTheStaggerTimerOutlastedIsSuspectEvenIfTheClockSaysLess) {
  // libuv timers count in whole milliseconds from a cached loop time: the wake-up can come
  // a little before a full stagger by the real clock. The timer's judgment wins.
  FakeTime time;
  RacePlan plan({0, 1}, 250ms, 3);
  plan.start(time.now);
  time.advance(249ms);
  EXPECT_EQ(text(plan.stagger_elapsed(time.now), time), Lines({"launch 1"}));
  EXPECT_EQ(text(plan.ready(1, time.now), time), Lines({"cancel 0 suspect", "won 1"}));
}

TEST(RacePlan, ALoserThatStartedLessThanAStaggerAgoIsNotSuspect) {
  FakeTime time;
  RacePlan plan({0, 1}, 250ms, 3);
  plan.start(time.now);
  time.advance(250ms);
  plan.stagger_elapsed(time.now);  // 1 starts now
  time.advance(100ms);
  EXPECT_EQ(text(plan.ready(0, time.now), time), Lines({"cancel 1", "won 0"}));
}

TEST(RacePlan, AFailureStartsTheNextCandidateWithoutWaiting) {
  FakeTime time;
  RacePlan plan({0, 1, 2}, 250ms, 3);
  plan.start(time.now);
  time.advance(3ms);
  EXPECT_EQ(text(plan.failed(0, false, time.now), time), Lines({"launch 1", "wake +250ms"}));
  time.advance(5ms);
  EXPECT_EQ(text(plan.ready(1, time.now), time), Lines({"won 1"}));
}

TEST(RacePlan, MaxParallelHoldsBackTheStaggerButNotAFailure) {
  FakeTime time;
  RacePlan plan({0, 1, 2}, 250ms, 2);
  plan.start(time.now);
  time.advance(250ms);
  EXPECT_EQ(text(plan.stagger_elapsed(time.now), time), Lines({"launch 1", "wake +250ms"}));
  time.advance(250ms);
  EXPECT_TRUE(plan.stagger_elapsed(time.now).empty()) << "two already run";
  time.advance(1s);
  EXPECT_EQ(text(plan.failed(0, false, time.now), time), Lines({"launch 2"}));
}

TEST(RacePlan, EveryCandidateFailingLosesTheRace) {
  FakeTime time;
  RacePlan plan({0, 1}, 250ms, 3);
  plan.start(time.now);
  EXPECT_EQ(text(plan.failed(0, false, time.now), time), Lines({"launch 1"}));
  EXPECT_EQ(text(plan.failed(1, false, time.now), time), Lines({"lost"}));
  EXPECT_TRUE(plan.finished());
  EXPECT_TRUE(plan.ready(1, time.now).empty()) << "nothing after the end";
}

TEST(RacePlan, NoCandidatesLosesAtOnce) {
  FakeTime time;
  RacePlan plan({}, 250ms, 3);
  EXPECT_EQ(text(plan.start(time.now), time), Lines({"lost"}));
}

TEST(RacePlan, ADeadPooledConnectionRetriesTheSameEndpointWithoutBlame) {
  FakeTime time;
  RacePlan plan({0, 1}, 250ms, 3);
  plan.start(time.now);
  time.advance(200ms);
  EXPECT_EQ(text(plan.failed(0, true, time.now), time), Lines({"launch 0"}));
  // The retry's clock restarted: ready 100 ms later, the other is not yet running.
  time.advance(50ms);
  EXPECT_EQ(text(plan.stagger_elapsed(time.now), time), Lines({"launch 1"}));
  time.advance(100ms);
  EXPECT_EQ(text(plan.ready(0, time.now), time), Lines({"cancel 1", "won 0"}));
}

TEST(RacePlan, LateAnswersAfterTheEndAreIgnored) {
  FakeTime time;
  RacePlan plan({0, 1}, 250ms, 3);
  plan.start(time.now);
  time.advance(250ms);
  plan.stagger_elapsed(time.now);
  plan.ready(1, time.now);
  EXPECT_TRUE(plan.failed(0, false, time.now).empty());
  EXPECT_TRUE(plan.stagger_elapsed(time.now).empty());
}

// abandon_after: the selector knows every candidate is cooling down. A recovered one that
// answers in time still wins; otherwise the race is given up at the deadline instead of
// waiting connect_timeout on a silent port.
TEST(RacePlanAbandon, GivesUpOneStaggerAfterTheStartWithoutASuspect) {
  FakeTime time;
  RacePlan plan({0, 1, 2}, 100ms, 3, 100ms);
  EXPECT_EQ(text(plan.start(time.now), time), Lines({"launch 0", "wake +100ms"}));
  time.advance(100ms);
  EXPECT_EQ(text(plan.stagger_elapsed(time.now), time), Lines({"cancel 0", "abandoned"}));
  EXPECT_TRUE(plan.finished());
  EXPECT_TRUE(plan.ready(0, time.now).empty());
}

TEST(RacePlanAbandon, TheTimersWordCountsEvenIfTheClockSaysLess) {
  FakeTime time;
  RacePlan plan({0, 1}, 100ms, 3, 100ms);
  plan.start(time.now);
  time.advance(99ms);
  EXPECT_EQ(text(plan.stagger_elapsed(time.now), time), Lines({"cancel 0", "abandoned"}));
}

TEST(RacePlanAbandon, ARecoveredCandidateStillWins) {
  FakeTime time;
  RacePlan plan({0, 1}, 100ms, 3, 100ms);
  plan.start(time.now);
  time.advance(30ms);
  EXPECT_EQ(text(plan.ready(0, time.now), time), Lines({"won 0"}));
  EXPECT_TRUE(plan.finished());
}

TEST(RacePlanAbandon, FailuresHandOverAtOnceButTheDeadlineStays) {
  FakeTime time;
  RacePlan plan({0, 1, 2}, 100ms, 3, 100ms);
  plan.start(time.now);
  time.advance(40ms);
  // The next wake-up is the deadline (60 ms away), not a stagger from now.
  EXPECT_EQ(text(plan.failed(0, false, time.now), time), Lines({"launch 1", "wake +60ms"}));
  time.advance(60ms);
  EXPECT_EQ(text(plan.stagger_elapsed(time.now), time), Lines({"cancel 1", "abandoned"}));
}

TEST(RacePlanAbandon, WakesForTheDeadlineEvenWithNothingLeftToLaunch) {
  FakeTime time;
  RacePlan plan({0}, 100ms, 3, 100ms);
  EXPECT_EQ(text(plan.start(time.now), time), Lines({"launch 0", "wake +100ms"}));
  time.advance(100ms);
  EXPECT_EQ(text(plan.stagger_elapsed(time.now), time), Lines({"cancel 0", "abandoned"}));
}

TEST(RacePlanAbandon, ALongerDeadlineKeepsStaggeringUntilItComes) {
  FakeTime time;
  RacePlan plan({0, 1, 2}, 100ms, 3, 250ms);
  EXPECT_EQ(text(plan.start(time.now), time), Lines({"launch 0", "wake +100ms"}));
  time.advance(100ms);
  EXPECT_EQ(text(plan.stagger_elapsed(time.now), time), Lines({"launch 1", "wake +100ms"}));
  time.advance(100ms);
  EXPECT_EQ(text(plan.stagger_elapsed(time.now), time), Lines({"launch 2", "wake +50ms"}));
  time.advance(50ms);
  EXPECT_EQ(text(plan.stagger_elapsed(time.now), time),
            Lines({"cancel 0", "cancel 1", "cancel 2", "abandoned"}));
}

TEST(RacePlanAbandon, AtMaxParallelTheDeadlineStillComes) {
  FakeTime time;
  RacePlan plan({0, 1}, 100ms, 1, 150ms);
  EXPECT_EQ(text(plan.start(time.now), time), Lines({"launch 0", "wake +100ms"}));
  time.advance(100ms);
  EXPECT_EQ(text(plan.stagger_elapsed(time.now), time), Lines({"wake +50ms"}));
  time.advance(50ms);
  EXPECT_EQ(text(plan.stagger_elapsed(time.now), time), Lines({"cancel 0", "abandoned"}));
}

TEST(RacePlanAbandon, EveryCandidateFailingFirstIsAnOrdinaryLoss) {
  FakeTime time;
  RacePlan plan({0, 1}, 100ms, 3, 100ms);
  plan.start(time.now);
  EXPECT_EQ(text(plan.failed(0, false, time.now), time), Lines({"launch 1", "wake +100ms"}));
  EXPECT_EQ(text(plan.failed(1, false, time.now), time), Lines({"lost"}));
  EXPECT_TRUE(plan.stagger_elapsed(time.now + 100ms).empty());
}

TEST(RacePlanAbandon, WithoutADeadlineNothingChanges) {
  FakeTime time;
  RacePlan plan({0}, 100ms, 3);
  EXPECT_EQ(text(plan.start(time.now), time), Lines({"launch 0"}));
}

}  // namespace
}  // namespace portrelay::relay
