// DeliveryScheduler under a fake clock: due order, max_deliveries, cool-downs, backoff with
// jitter, waiting for the chain and the flush when it is back, expiry, operator retries.
// Time moves only when a test says so; nothing sleeps.
#include "portrelay/spool/delivery_scheduler.hpp"

#include <gtest/gtest.h>

namespace portrelay::spool {
namespace {

using namespace std::chrono_literals;
using Kind = DeliveryScheduler::Next::Kind;
using Stage = QueueEntry::Stage;

constexpr std::int64_t kStart = 1'700'000'000'000;

struct FakeClock {
  std::int64_t now = kStart;
  double jitter = 1.0;
  Clock clock() {
    return Clock{[this]() { return now; }, [this]() { return jitter; }, []() { return 7u; }};
  }
};

DeliveryScheduler::Limits limits(std::size_t max_deliveries = 2) {
  DeliveryScheduler::Limits l;
  l.max_deliveries = max_deliveries;
  l.retry = RetryPolicy{30s, 20min, 24h};
  l.failed_lifetime = 48h;
  return l;
}

QueueEntry entry(const std::string& id, std::int64_t arrival, std::size_t recipients = 1) {
  QueueEntry e;
  e.layout.envelope.id = id;
  e.layout.envelope.arrival_ms = arrival;
  e.layout.envelope.recipients.assign(recipients, "r@example.test");
  e.state.recipients.resize(recipients);
  e.state.next_attempt_ms = arrival;  // as Spool::accept does
  return e;
}

AttemptResult transient(std::size_t recipients = 1) {
  AttemptResult result;
  result.recipients.assign(recipients,
                           RecipientResult{RecipientVerdict::Transient, "451 4.3.0 later"});
  result.error = "451 4.3.0 later";
  return result;
}

const auto kNeverCooling = []() { return false; };

struct Fixture : ::testing::Test {
  FakeClock time;
  QueueIndex index;
  DeliveryScheduler scheduler{index, time.clock(), limits()};

  std::string next_delivered(std::size_t running) {
    auto next = scheduler.next(running, kNeverCooling);
    return next.kind == Kind::Deliver ? next.id : "(" + std::to_string(int(next.kind)) + ")";
  }
  // An attempt on `id` ended with `result`, settled and applied as the spool's glue does.
  Settlement attempt(const std::string& id, const AttemptResult& result, bool no_endpoint = false) {
    Settlement settlement = scheduler.attempt_done(id, result, no_endpoint);
    index.set_state(id, settlement.state);
    return settlement;
  }
};

using DeliverySchedulerTest = Fixture;

TEST_F(DeliverySchedulerTest, OldestDueFirstAtMostMaxDeliveries) {
  index.add(entry("B", kStart - 10));
  index.add(entry("A", kStart - 20));
  index.add(entry("C", kStart - 5));
  EXPECT_EQ(next_delivered(0), "A");
  EXPECT_EQ(next_delivered(1), "B");
  EXPECT_EQ(scheduler.next(2, kNeverCooling).kind, Kind::Nothing);  // max_deliveries = 2
  EXPECT_EQ(index.find("A")->stage, Stage::InFlight);
  EXPECT_EQ(index.find("C")->stage, Stage::Waiting);
  scheduler.set_limits(limits(3));
  EXPECT_EQ(next_delivered(2), "C");
  EXPECT_EQ(scheduler.next(0, kNeverCooling).kind, Kind::Nothing);  // nothing left due
}

TEST_F(DeliverySchedulerTest, NothingBeforeItIsDue) {
  index.add(entry("A", kStart + 1000));
  EXPECT_EQ(scheduler.next(0, kNeverCooling).kind, Kind::Nothing);
  time.now += 999;
  EXPECT_EQ(scheduler.next(0, kNeverCooling).kind, Kind::Nothing);
  time.now += 1;
  EXPECT_EQ(next_delivered(0), "A");
}

TEST_F(DeliverySchedulerTest, CoolDownsHoldTheQueueAndAreAskedOnlyWhenSomethingIsDue) {
  int asked = 0;
  const auto cooling = [&asked]() {
    ++asked;
    return true;
  };
  EXPECT_EQ(scheduler.next(0, cooling).kind, Kind::Nothing);  // empty queue
  index.add(entry("A", kStart + 1000));
  EXPECT_EQ(scheduler.next(0, cooling).kind, Kind::Nothing);  // not due yet
  EXPECT_EQ(asked, 0);
  time.now += 1000;
  EXPECT_EQ(scheduler.next(0, cooling).kind, Kind::HoldForChain);
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(index.find("A")->stage, Stage::Waiting);  // still waiting, nothing started
  EXPECT_TRUE(scheduler.held_up(cooling));
  EXPECT_FALSE(scheduler.held_up(kNeverCooling));
}

TEST_F(DeliverySchedulerTest, AMessageWithNothingPendingIsFinishedNotDelivered) {
  QueueEntry settled = entry("A", kStart - 1);
  settled.state.recipients[0].status = RecipientStatus::Delivered;
  index.add(std::move(settled));
  auto next = scheduler.next(0, kNeverCooling);
  EXPECT_EQ(next.kind, Kind::Finish);
  EXPECT_EQ(next.id, "A");
}

TEST_F(DeliverySchedulerTest, TransientFailuresBackOffDoublingWithJitterUpToRetryMax) {
  index.add(entry("A", kStart));
  ASSERT_EQ(next_delivered(0), "A");
  time.jitter = 1.2;
  Settlement first = attempt("A", transient());
  EXPECT_FALSE(first.finished);
  EXPECT_EQ(first.state.attempts, 1u);
  EXPECT_EQ(first.state.next_attempt_ms, kStart + 36'000);  // 30 s * 1.2
  EXPECT_EQ(index.find("A")->stage, Stage::Waiting);
  EXPECT_EQ(index.counts().deferred, 1u);

  time.now += 35'999;
  EXPECT_EQ(scheduler.next(0, kNeverCooling).kind, Kind::Nothing);
  time.now += 1;
  ASSERT_EQ(next_delivered(0), "A");
  time.jitter = 0.8;
  EXPECT_EQ(attempt("A", transient()).state.next_attempt_ms, time.now + 48'000);  // 60 s * 0.8

  // The sixth failure would wait 16 min, the seventh 32: capped at retry_max (20 min).
  time.jitter = 1.0;
  for (int i = 3; i <= 6; ++i) {
    time.now = index.find("A")->state.next_attempt_ms;
    ASSERT_EQ(next_delivered(0), "A");
    attempt("A", transient());
  }
  EXPECT_EQ(index.find("A")->state.next_attempt_ms - time.now, 16 * 60'000);
  time.now = index.find("A")->state.next_attempt_ms;
  ASSERT_EQ(next_delivered(0), "A");
  EXPECT_EQ(attempt("A", transient()).state.next_attempt_ms - time.now, 20 * 60'000);
}

TEST_F(DeliverySchedulerTest, NoEndpointWaitsForTheChainAndItsReturnFlushesAtOnce) {
  index.add(entry("A", kStart - 100));
  index.add(entry("B", kStart - 50));
  ASSERT_EQ(next_delivered(0), "A");
  ASSERT_EQ(next_delivered(1), "B");
  attempt("A", transient(), /*no_endpoint=*/true);
  attempt("B", transient(), /*no_endpoint=*/false);  // an upstream's 4xx: its own backoff
  EXPECT_EQ(index.find("A")->stage, Stage::WaitingForChain);
  EXPECT_TRUE(scheduler.held_up(kNeverCooling));  // A is first due and waits for the chain

  time.now += 5'000;
  EXPECT_EQ(scheduler.next(0, kNeverCooling).kind, Kind::Nothing);  // backoff not over
  EXPECT_EQ(scheduler.endpoint_up(), 1u);
  EXPECT_EQ(index.find("A")->stage, Stage::Waiting);
  EXPECT_EQ(index.find("A")->state.next_attempt_ms, time.now);
  EXPECT_FALSE(scheduler.held_up(kNeverCooling));
  EXPECT_EQ(next_delivered(0), "A");
  EXPECT_EQ(scheduler.next(1, kNeverCooling).kind, Kind::Nothing);  // B keeps its backoff
  EXPECT_EQ(scheduler.endpoint_up(), 0u);
}

TEST_F(DeliverySchedulerTest, TheFlushNeverPostponesAMessage) {
  index.add(entry("A", kStart - 100));
  index.set_stage("A", Stage::WaitingForChain);  // due since kStart - 100
  EXPECT_EQ(scheduler.endpoint_up(), 1u);
  EXPECT_EQ(index.find("A")->state.next_attempt_ms, kStart - 100);
}

TEST_F(DeliverySchedulerTest, AnAttemptPastMaxLifetimeExpiresThePendingRecipients) {
  index.add(entry("A", kStart, 2));
  ASSERT_EQ(next_delivered(0), "A");
  time.now = kStart + 24 * 3600 * 1000;
  AttemptResult result = transient(2);
  result.recipients[0] = RecipientResult{RecipientVerdict::Accepted, "250 ok"};
  Settlement settlement = attempt("A", result);
  EXPECT_TRUE(settlement.finished);
  EXPECT_TRUE(settlement.expired);
  EXPECT_EQ(settlement.delivered, std::vector<std::size_t>{0});
  EXPECT_EQ(settlement.bounced, std::vector<std::size_t>{1});
}

TEST_F(DeliverySchedulerTest, ExpiryScanFindsOldMessagesNotBusyAndOldFailedOnes) {
  index.add(entry("old", kStart - 24 * 3600 * 1000));
  index.add(entry("old-in-flight", kStart - 24 * 3600 * 1000 - 5));
  index.add(entry("young", kStart - 24 * 3600 * 1000 + 1));
  index.add(entry("failed-old", kStart - 100));
  index.add(entry("failed-young", kStart - 100));
  index.set_stage("old-in-flight", Stage::InFlight);
  index.set_stage("failed-old", Stage::Failed, kStart - 48 * 3600 * 1000);
  index.set_stage("failed-young", Stage::Failed, kStart - 48 * 3600 * 1000 + 1);
  auto expiry = scheduler.expiry_scan();
  EXPECT_EQ(expiry.expired, std::vector<std::string>{"old"});
  EXPECT_EQ(expiry.forgotten, std::vector<std::string>{"failed-old"});
  time.now += 1;
  expiry = scheduler.expiry_scan();
  EXPECT_EQ(expiry.expired, (std::vector<std::string>{"old", "young"}));
  EXPECT_EQ(expiry.forgotten, (std::vector<std::string>{"failed-old", "failed-young"}));
}

TEST_F(DeliverySchedulerTest, RetryNowMakesWaitingMessagesDueAndLeavesBusyAndFailedOnes) {
  for (const char* id : {"A", "B", "C", "D"}) index.add(entry(id, kStart + 60'000));
  index.set_stage("B", Stage::InFlight);
  index.set_stage("C", Stage::Failed, kStart);
  index.set_stage("D", Stage::WaitingForChain);
  EXPECT_EQ(scheduler.retry_now("B"), 0u);
  EXPECT_EQ(scheduler.retry_now("C"), 0u);
  EXPECT_EQ(scheduler.retry_now("Z"), 0u);
  EXPECT_EQ(scheduler.retry_now("A"), 1u);
  EXPECT_EQ(index.find("A")->state.next_attempt_ms, kStart);
  EXPECT_EQ(index.find("D")->state.next_attempt_ms, kStart + 60'000);
  EXPECT_EQ(scheduler.retry_now("all"), 2u);
  EXPECT_EQ(index.find("D")->stage, Stage::Waiting);
  EXPECT_EQ(scheduler.retry_now(""), 2u);
  EXPECT_EQ(next_delivered(0), "A");
  EXPECT_EQ(next_delivered(1), "D");
}

TEST_F(DeliverySchedulerTest, AnAbandonedAttemptWaitsAgain) {
  index.add(entry("A", kStart));
  ASSERT_EQ(next_delivered(0), "A");
  scheduler.abandoned("A");
  EXPECT_EQ(index.find("A")->stage, Stage::Waiting);
  EXPECT_EQ(next_delivered(0), "A");
}

TEST_F(DeliverySchedulerTest, ABounceThatCouldNotBeStoredIsFinishedAgainRetryMinLater) {
  QueueEntry settled = entry("A", kStart - 1);
  settled.state.recipients[0].status = RecipientStatus::Bounced;
  index.add(std::move(settled));
  ASSERT_EQ(scheduler.next(0, kNeverCooling).kind, Kind::Finish);
  index.set_stage("A", Stage::Bouncing);
  EXPECT_EQ(scheduler.next(0, kNeverCooling).kind, Kind::Nothing);
  scheduler.bounce_not_stored("A");
  EXPECT_EQ(index.find("A")->stage, Stage::Waiting);
  time.now += 29'999;
  EXPECT_EQ(scheduler.next(0, kNeverCooling).kind, Kind::Nothing);
  time.now += 1;
  EXPECT_EQ(scheduler.next(0, kNeverCooling).kind, Kind::Finish);
}

}  // namespace
}  // namespace portrelay::spool
