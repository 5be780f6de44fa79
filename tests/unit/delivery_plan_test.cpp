// The spool's decisions after a delivery attempt: retry schedule and per-recipient
// settlement, with a fake clock (times are plain numbers) and fixed jitter.
#include "portrelay/spool/delivery_plan.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

namespace portrelay::spool {
namespace {

constexpr std::int64_t kArrival = 1'000'000;
const RetryPolicy kPolicy{Millis(30'000), Millis(1'800'000), Millis(5LL * 24 * 3600 * 1000)};

DeliveryState fresh(std::size_t recipients) {
  DeliveryState state;
  state.recipients.resize(recipients);
  return state;
}

RecipientResult accepted() { return {RecipientVerdict::Accepted, "250 2.0.0 Ok"}; }
RecipientResult refused() { return {RecipientVerdict::Permanent, "550 5.1.1 unknown"}; }
RecipientResult later() { return {RecipientVerdict::Transient, "451 4.3.0 later"}; }

TEST(RetrySchedule, DoublesFromMinimumUpToMaximumWithJitter) {
  EXPECT_EQ(retry_delay(1, kPolicy, 1.0), Millis(30'000));
  EXPECT_EQ(retry_delay(2, kPolicy, 1.0), Millis(60'000));
  EXPECT_EQ(retry_delay(3, kPolicy, 1.0), Millis(120'000));
  EXPECT_EQ(retry_delay(7, kPolicy, 1.0), Millis(1'800'000));    // 30s * 64 capped at 30m
  EXPECT_EQ(retry_delay(500, kPolicy, 1.0), Millis(1'800'000));  // no overflow
  EXPECT_EQ(retry_delay(1, kPolicy, 0.8), Millis(24'000));
  EXPECT_EQ(retry_delay(1, kPolicy, 1.2), Millis(36'000));
  EXPECT_EQ(retry_delay(1, kPolicy, 5.0), Millis(36'000));  // jitter is clamped
}

TEST(Settlement, EveryRecipientAcceptedFinishesTheMessage) {
  AttemptResult attempt{{accepted(), accepted()}, "", false};
  auto result = settle(fresh(2), attempt, kArrival + 10, kArrival, kPolicy, 1.0);
  EXPECT_TRUE(result.finished);
  EXPECT_EQ(result.delivered, (std::vector<std::size_t>{0, 1}));
  EXPECT_TRUE(result.bounced.empty());
  EXPECT_EQ(result.state.attempts, 1u);
  EXPECT_EQ(result.state.recipients[1].status, RecipientStatus::Delivered);
}

TEST(Settlement, MixedOutcomesSettleEachRecipientAndRetryOnlyThePendingOne) {
  AttemptResult attempt{{accepted(), refused(), later()}, "451 4.3.0 later", false};
  auto first = settle(fresh(3), attempt, kArrival + 100, kArrival, kPolicy, 1.0);
  EXPECT_FALSE(first.finished);
  EXPECT_EQ(first.delivered, (std::vector<std::size_t>{0}));
  EXPECT_EQ(first.bounced, (std::vector<std::size_t>{1}));
  EXPECT_EQ(first.state.recipients[2].status, RecipientStatus::Pending);
  EXPECT_EQ(first.state.recipients[2].reply, "451 4.3.0 later");
  EXPECT_EQ(first.state.next_attempt_ms, kArrival + 100 + 30'000);

  // The second attempt only concerns recipient 2; the others keep their verdicts.
  AttemptResult retry{{std::nullopt, std::nullopt, accepted()}, "", false};
  auto second = settle(first.state, retry, kArrival + 40'000, kArrival, kPolicy, 1.0);
  EXPECT_TRUE(second.finished);
  EXPECT_EQ(second.delivered, (std::vector<std::size_t>{2}));
  EXPECT_TRUE(second.bounced.empty());
  EXPECT_EQ(second.state.recipients[1].status, RecipientStatus::Bounced);
  EXPECT_EQ(second.state.attempts, 2u);
  EXPECT_EQ(second.state.next_attempt_ms, 0);
}

TEST(Settlement, NothingReachableKeepsEveryoneAndBacksOff) {
  AttemptResult attempt{{later(), later()}, "451 4.4.1 No upstream endpoint", true};
  auto state = fresh(2);
  std::int64_t now = kArrival;
  for (unsigned attempt_number = 1; attempt_number <= 3; ++attempt_number) {
    auto result = settle(state, attempt, now, kArrival, kPolicy, 1.0);
    EXPECT_FALSE(result.finished);
    EXPECT_EQ(result.state.next_attempt_ms - now, 30'000LL << (attempt_number - 1));
    state = result.state;
    now = state.next_attempt_ms;
  }
  EXPECT_EQ(state.last_error, "451 4.4.1 No upstream endpoint");
}

TEST(Settlement, StillPendingAfterMaxLifetimeExpiresAndBounces) {
  AttemptResult attempt{{later(), accepted()}, "451 4.3.0 later", false};
  auto result =
      settle(fresh(2), attempt, kArrival + kPolicy.max_lifetime.count(), kArrival, kPolicy, 1.0);
  EXPECT_TRUE(result.finished);
  EXPECT_TRUE(result.expired);
  EXPECT_EQ(result.bounced, (std::vector<std::size_t>{0}));
  EXPECT_EQ(result.delivered, (std::vector<std::size_t>{1}));
  EXPECT_EQ(result.state.recipients[0].reply, "451 4.3.0 later");  // why it never got through
  // A millisecond earlier it is still retried.
  auto before = settle(fresh(2), attempt, kArrival + kPolicy.max_lifetime.count() - 1, kArrival,
                       kPolicy, 1.0);
  EXPECT_FALSE(before.expired);
  EXPECT_FALSE(before.finished);
}

TEST(Settlement, OperatorBounceSettlesOnlyPendingRecipients) {
  auto state = fresh(3);
  state.recipients[0].status = RecipientStatus::Delivered;
  auto result = bounce_pending(state, "bounced by the operator");
  EXPECT_TRUE(result.finished);
  EXPECT_EQ(result.bounced, (std::vector<std::size_t>{1, 2}));
  EXPECT_EQ(result.state.recipients[0].status, RecipientStatus::Delivered);
  EXPECT_EQ(result.state.recipients[2].reply, "bounced by the operator");
}

}  // namespace
}  // namespace portrelay::spool

namespace portrelay::spool {
namespace {

relay::RecipientReport recipient_report(const char* address, relay::DeliveryOutcome outcome,
                                        const char* reply, const char* endpoint) {
  relay::RecipientReport report;
  report.address = address;
  report.outcome = outcome;
  report.reply = smtp::make_reply(std::atoi(reply), std::string(reply + 4, 5), reply + 10);
  report.endpoint = endpoint;
  return report;
}

// The report answers for the pending recipients only, in order; the others stay unset.
TEST(AttemptResult, MapsEachReportToItsPendingRecipientByPosition) {
  relay::DeliveryReport report;
  report.outcome = relay::DeliveryOutcome::Delivered;
  report.endpoint = "sink:2525";
  report.recipients = {
      recipient_report("a@x", relay::DeliveryOutcome::Delivered, "250 2.0.0 Ok", "sink:2525"),
      recipient_report("a@x", relay::DeliveryOutcome::Refused, "550 5.1.1 unknown", "sink:2525"),
      recipient_report("c@x", relay::DeliveryOutcome::Throttled, "451 4.7.0 slow", "sink:2525")};
  AttemptResult result = attempt_result(report, {0, 2, 3}, 4);
  ASSERT_EQ(result.recipients.size(), 4u);
  EXPECT_EQ(result.recipients[0]->verdict, RecipientVerdict::Accepted);
  EXPECT_FALSE(result.recipients[1].has_value());  // settled before: not asked
  EXPECT_EQ(result.recipients[2]->verdict, RecipientVerdict::Permanent);
  EXPECT_EQ(result.recipients[2]->reply, "550 5.1.1 unknown");
  EXPECT_EQ(result.recipients[2]->remote_mta, "sink:2525");
  EXPECT_EQ(result.recipients[3]->verdict, RecipientVerdict::Transient);  // throttled waits
  EXPECT_EQ(result.error, "");
  EXPECT_FALSE(result.no_endpoint);
}

TEST(AttemptResult, NoEndpointOnlyWhenNothingCouldTakeTheMessage) {
  relay::DeliveryReport unreachable;
  unreachable.outcome = relay::DeliveryOutcome::Deferred;
  unreachable.reply = smtp::make_reply(451, "4.4.1", "No upstream endpoint could take it");
  unreachable.recipients = {
      recipient_report("a@x", relay::DeliveryOutcome::Deferred, "451 4.4.1 none", "")};
  AttemptResult waiting = attempt_result(unreachable, {0}, 1);
  EXPECT_TRUE(waiting.no_endpoint);
  EXPECT_EQ(waiting.error, "451 4.4.1 No upstream endpoint could take it");

  relay::DeliveryReport refused = unreachable;  // an endpoint answered: its word, no flush
  refused.outcome = relay::DeliveryOutcome::Refused;
  refused.endpoint = "sink:2525";
  EXPECT_FALSE(attempt_result(refused, {0}, 1).no_endpoint);
  relay::DeliveryReport busy = unreachable;  // a 4xx from a live endpoint: plain backoff
  busy.endpoint = "sink:2525";
  EXPECT_FALSE(attempt_result(busy, {0}, 1).no_endpoint);
}

TEST(Settlement, KeepsTheEndpointThatSettledEachRecipientForTheDsn) {
  AttemptResult attempt;
  attempt.recipients = {RecipientResult{RecipientVerdict::Accepted, "250 2.0.0 Ok", "a:587"},
                        RecipientResult{RecipientVerdict::Permanent, "550 5.1.1 no", "b:465"}};
  Settlement settlement = settle(fresh(2), attempt, kArrival, kArrival, kPolicy, 1.0);
  ASSERT_EQ(settlement.remote_mta.size(), 2u);
  EXPECT_EQ(settlement.remote_mta[0], "a:587");
  EXPECT_EQ(settlement.remote_mta[1], "b:465");
}

}  // namespace
}  // namespace portrelay::spool
