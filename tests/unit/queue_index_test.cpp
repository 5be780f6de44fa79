// QueueIndex: due order, arrival order and the gauges' counts stay in step with the entries
// through every change of stage and state.
#include "portrelay/spool/queue_index.hpp"

#include <gtest/gtest.h>

namespace portrelay::spool {
namespace {

using Stage = QueueEntry::Stage;

QueueEntry entry(const std::string& id, std::int64_t arrival, std::int64_t next_attempt,
                 std::size_t recipients = 1) {
  QueueEntry e;
  e.layout.envelope.id = id;
  e.layout.envelope.arrival_ms = arrival;
  e.layout.envelope.recipients.assign(recipients, "r@example.test");
  e.layout.body_offset = 100;
  e.layout.body_size = 1000;
  e.state.recipients.resize(recipients);
  e.state.next_attempt_ms = next_attempt;
  return e;
}

// The ids in due order, draining a copy of the index.
std::vector<std::string> due_order(QueueIndex index) {
  std::vector<std::string> order;
  while (auto first = index.first_due()) {
    order.push_back(first->id);
    index.set_stage(first->id, Stage::InFlight);
  }
  return order;
}

std::uint64_t file_size() { return entry("x", 0, 0).layout.file_size(); }

TEST(QueueIndex, DueOrderIsNextAttemptThenArrivalThenId) {
  QueueIndex index;
  index.add(entry("C", 10, 500));
  index.add(entry("B", 20, 100));
  index.add(entry("A", 30, 100));
  index.add(entry("D", 5, 100));
  EXPECT_EQ(due_order(index), (std::vector<std::string>{"D", "B", "A", "C"}));
  auto first = index.first_due();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->id, "D");
  EXPECT_EQ(first->at_ms, 100);
  EXPECT_EQ(first->stage, Stage::Waiting);
}

TEST(QueueIndex, AnIdIsAddedOnce) {
  QueueIndex index;
  EXPECT_TRUE(index.add(entry("A", 1, 1)));
  EXPECT_FALSE(index.add(entry("A", 2, 2)));
  EXPECT_EQ(index.size(), 1u);
  EXPECT_EQ(index.find("A")->layout.envelope.arrival_ms, 1);
  EXPECT_EQ(index.due_count(), 1u);
}

TEST(QueueIndex, OnlyWaitingEntriesAreDue) {
  QueueIndex index;
  for (const char* id : {"A", "B", "C", "D", "E"}) index.add(entry(id, 1, 1));
  index.set_stage("A", Stage::InFlight);
  index.set_stage("B", Stage::Bouncing);
  index.set_stage("C", Stage::Failed, 77);
  index.set_stage("D", Stage::WaitingForChain);
  EXPECT_EQ(due_order(index), (std::vector<std::string>{"D", "E"}));
  EXPECT_EQ(index.find("C")->failed_at_ms, 77);
  EXPECT_EQ(index.find("D")->failed_at_ms, 0);
  // Back from flight: due again.
  index.set_stage("A", Stage::Waiting);
  EXPECT_EQ(due_order(index), (std::vector<std::string>{"A", "D", "E"}));
}

TEST(QueueIndex, CountsFollowAttemptsAndFailedArea) {
  QueueIndex index;
  index.add(entry("A", 1, 1));
  index.add(entry("B", 2, 2));
  QueueEntry failed = entry("C", 3, 3);
  failed.stage = Stage::Failed;
  index.add(std::move(failed));
  EXPECT_EQ(index.counts(), (QueueIndex::Counts{2, 0, 1, 2 * file_size()}));

  DeliveryState tried = index.find("A")->state;
  tried.attempts = 1;
  tried.next_attempt_ms = 50;
  index.set_state("A", tried);
  EXPECT_EQ(index.counts(), (QueueIndex::Counts{1, 1, 1, 2 * file_size()}));
  // In flight or bouncing, a message still counts where it was.
  index.set_stage("A", Stage::InFlight);
  index.set_stage("B", Stage::Bouncing);
  EXPECT_EQ(index.counts(), (QueueIndex::Counts{1, 1, 1, 2 * file_size()}));
  // Kept in failed/: out of the queue's bytes.
  index.set_stage("A", Stage::Failed, 9);
  EXPECT_EQ(index.counts(), (QueueIndex::Counts{1, 0, 2, file_size()}));
  EXPECT_TRUE(index.remove("A"));
  EXPECT_TRUE(index.remove("B"));
  EXPECT_FALSE(index.remove("B"));
  EXPECT_EQ(index.counts(), (QueueIndex::Counts{0, 0, 1, 0}));
  EXPECT_EQ(index.size(), 1u);
}

TEST(QueueIndex, ANewStateReordersAWaitingEntry) {
  QueueIndex index;
  index.add(entry("A", 1, 10));
  index.add(entry("B", 2, 20));
  DeliveryState later = index.find("A")->state;
  later.attempts = 1;
  later.next_attempt_ms = 30;
  index.set_state("A", later);
  EXPECT_EQ(due_order(index), (std::vector<std::string>{"B", "A"}));
  EXPECT_EQ(index.due_count(), 2u);  // moved, not duplicated
}

TEST(QueueIndex, SetDueEndsTheWaitForTheChain) {
  QueueIndex index;
  index.add(entry("A", 1, 500));
  index.set_stage("A", Stage::WaitingForChain);
  EXPECT_EQ(index.first_due()->stage, Stage::WaitingForChain);
  index.set_due("A", 100);
  EXPECT_EQ(index.find("A")->stage, Stage::Waiting);
  EXPECT_EQ(index.first_due()->at_ms, 100);
  EXPECT_EQ(index.due_count(), 1u);
}

TEST(QueueIndex, OldestArrivalIsOfQueueOnly) {
  QueueIndex index;
  EXPECT_FALSE(index.oldest_arrival_ms());
  index.add(entry("A", 5, 1));
  index.add(entry("B", 9, 1));
  index.set_stage("A", Stage::InFlight);
  EXPECT_EQ(index.oldest_arrival_ms(), 5);
  index.set_stage("A", Stage::Failed, 1);
  EXPECT_EQ(index.oldest_arrival_ms(), 9);
  index.remove("B");
  EXPECT_FALSE(index.oldest_arrival_ms());
}

TEST(QueueIndex, PendingAndBusy) {
  QueueEntry e = entry("A", 1, 1, 2);
  EXPECT_TRUE(e.has_pending());
  e.state.recipients[0].status = RecipientStatus::Delivered;
  EXPECT_TRUE(e.has_pending());
  e.state.recipients[1].status = RecipientStatus::Bounced;
  EXPECT_FALSE(e.has_pending());
  EXPECT_FALSE(e.busy());
  e.stage = Stage::InFlight;
  EXPECT_TRUE(e.busy());
  e.stage = Stage::Bouncing;
  EXPECT_TRUE(e.busy());
  e.stage = Stage::Failed;
  EXPECT_FALSE(e.busy());
  EXPECT_STREQ(to_string(Stage::WaitingForChain), "waiting_for_chain");
}

TEST(QueueIndex, UnknownIdsChangeNothing) {
  QueueIndex index;
  index.add(entry("A", 1, 1));
  index.set_stage("Z", Stage::Failed, 1);
  index.set_state("Z", DeliveryState{});
  index.set_due("Z", 5);
  EXPECT_EQ(index.find("Z"), nullptr);
  EXPECT_EQ(index.counts(), (QueueIndex::Counts{1, 0, 0, file_size()}));
}

}  // namespace
}  // namespace portrelay::spool
