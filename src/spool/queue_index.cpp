#include "portrelay/spool/queue_index.hpp"

#include <algorithm>

namespace portrelay::spool {

bool QueueEntry::has_pending() const {
  return std::any_of(state.recipients.begin(), state.recipients.end(),
                     [](const auto& r) { return r.status == RecipientStatus::Pending; });
}

const char* to_string(QueueEntry::Stage stage) {
  switch (stage) {
    case QueueEntry::Stage::Waiting:
      return "waiting";
    case QueueEntry::Stage::WaitingForChain:
      return "waiting_for_chain";
    case QueueEntry::Stage::InFlight:
      return "in_flight";
    case QueueEntry::Stage::Bouncing:
      return "bouncing";
    case QueueEntry::Stage::Failed:
      return "failed";
  }
  return "?";
}

void QueueIndex::order(const QueueEntry& entry, bool in) {
  if (!entry.waiting()) return;
  const DueKey key{entry.state.next_attempt_ms, entry.layout.envelope.arrival_ms, entry.id()};
  in ? (void)due_.insert(key) : (void)due_.erase(key);
}

void QueueIndex::count(const QueueEntry& entry, int sign) {
  std::size_t& counter = entry.stage == Stage::Failed ? counts_.failed
                         : entry.state.attempts == 0  ? counts_.queued
                                                      : counts_.deferred;
  counter += static_cast<std::size_t>(sign);  // -1 wraps back exactly
  if (entry.stage == Stage::Failed) return;
  counts_.queued_bytes += static_cast<std::uint64_t>(sign) * entry.layout.file_size();
  const ArrivalKey key{entry.layout.envelope.arrival_ms, entry.id()};
  sign > 0 ? (void)by_arrival_.insert(key) : (void)by_arrival_.erase(key);
}

bool QueueIndex::add(QueueEntry entry) {
  const std::string id = entry.id();
  auto [it, inserted] = entries_.emplace(id, std::move(entry));
  if (inserted) {
    order(it->second, true);
    count(it->second, +1);
  }
  return inserted;
}

bool QueueIndex::remove(const std::string& id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  order(it->second, false);
  count(it->second, -1);
  entries_.erase(it);
  return true;
}

const QueueEntry* QueueIndex::find(const std::string& id) const {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : &it->second;
}

void QueueIndex::set_stage(const std::string& id, Stage stage, std::int64_t failed_at_ms) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  QueueEntry& entry = it->second;
  // Only entering or leaving failed/ changes the counts and arrival order.
  const bool recount = (entry.stage == Stage::Failed) != (stage == Stage::Failed);
  order(entry, false);
  if (recount) count(entry, -1);
  entry.stage = stage;
  entry.failed_at_ms = stage == Stage::Failed ? failed_at_ms : 0;
  order(entry, true);
  if (recount) count(entry, +1);
}

void QueueIndex::set_state(const std::string& id, DeliveryState state) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  QueueEntry& entry = it->second;
  // Only a first attempt moves it between the counts (queued -> deferred).
  const bool recount = (entry.state.attempts == 0) != (state.attempts == 0);
  order(entry, false);
  if (recount) count(entry, -1);
  entry.state = std::move(state);
  order(entry, true);
  if (recount) count(entry, +1);
}

void QueueIndex::set_due(const std::string& id, std::int64_t next_attempt_ms) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  QueueEntry& entry = it->second;
  order(entry, false);
  entry.state.next_attempt_ms = next_attempt_ms;
  if (entry.stage == Stage::WaitingForChain) entry.stage = Stage::Waiting;
  order(entry, true);
}

std::optional<QueueIndex::Due> QueueIndex::first_due() const {
  if (due_.empty()) return std::nullopt;
  const auto& [at, arrival, id] = *due_.begin();
  return Due{id, at, entries_.at(id).stage};
}

std::optional<std::int64_t> QueueIndex::oldest_arrival_ms() const {
  if (by_arrival_.empty()) return std::nullopt;
  return by_arrival_.begin()->first;
}

}  // namespace portrelay::spool
