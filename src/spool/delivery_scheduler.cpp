#include "portrelay/spool/delivery_scheduler.hpp"

#include <algorithm>

namespace portrelay::spool {

DeliveryScheduler::DeliveryScheduler(QueueIndex& index, Clock clock, Limits limits)
    : index_(index), clock_(std::move(clock)), limits_(limits) {}

DeliveryScheduler::Next DeliveryScheduler::next(std::size_t running,
                                                const AllCoolingDown& all_cooling_down,
                                                const LimitWait& limit_wait) {
  if (running >= limits_.max_deliveries) return {};
  auto first = index_.first_due();
  if (!first || first->at_ms > clock_.now_ms()) return {};
  if (all_cooling_down()) return {Next::Kind::HoldForChain, {}};
  if (!index_.find(first->id)->has_pending()) return {Next::Kind::Finish, first->id};
  if (limit_wait)
    if (const auto wait = limit_wait()) return {Next::Kind::HoldForLimits, {}, *wait};
  index_.set_stage(first->id, QueueEntry::Stage::InFlight);
  return {Next::Kind::Deliver, first->id};
}

Settlement DeliveryScheduler::attempt_done(const std::string& id, const AttemptResult& result,
                                           bool no_endpoint) {
  index_.set_stage(id,
                   no_endpoint ? QueueEntry::Stage::WaitingForChain : QueueEntry::Stage::Waiting);
  const QueueEntry& entry = *index_.find(id);
  return settle(entry.state, result, clock_.now_ms(), entry.layout.envelope.arrival_ms,
                limits_.retry, clock_.jitter());
}

void DeliveryScheduler::abandoned(const std::string& id) {
  index_.set_stage(id, QueueEntry::Stage::Waiting);
}

void DeliveryScheduler::bounce_not_stored(const std::string& id) {
  index_.set_due(id, clock_.now_ms() + limits_.retry.retry_min.count());
  index_.set_stage(id, QueueEntry::Stage::Waiting);
}

std::size_t DeliveryScheduler::endpoint_up() {
  const std::int64_t now = clock_.now_ms();
  std::vector<std::pair<std::string, std::int64_t>> flushed;
  for (const auto& [id, entry] : index_.entries())
    if (entry.stage == QueueEntry::Stage::WaitingForChain)
      flushed.emplace_back(id, std::min(entry.state.next_attempt_ms, now));
  for (const auto& [id, at] : flushed) index_.set_due(id, at);
  return flushed.size();
}

std::size_t DeliveryScheduler::retry_now(const std::string& id) {
  const bool all = id.empty() || id == "all";
  const std::int64_t now = clock_.now_ms();
  std::vector<std::string> due;
  for (const auto& [key, entry] : index_.entries())
    if ((all || key == id) && entry.waiting()) due.push_back(key);
  for (const auto& key : due) index_.set_due(key, now);
  return due.size();
}

bool DeliveryScheduler::held_up(const AllCoolingDown& all_cooling_down) const {
  auto first = index_.first_due();
  return first && (first->stage == QueueEntry::Stage::WaitingForChain || all_cooling_down());
}

DeliveryScheduler::Expiry DeliveryScheduler::expiry_scan() const {
  const std::int64_t now = clock_.now_ms();
  Expiry expiry;
  for (const auto& [id, entry] : index_.entries()) {
    if (entry.stage == QueueEntry::Stage::Failed) {
      if (now - entry.failed_at_ms >= limits_.failed_lifetime.count())
        expiry.forgotten.push_back(id);
    } else if (!entry.busy() &&
               now - entry.layout.envelope.arrival_ms >= limits_.retry.max_lifetime.count()) {
      expiry.expired.push_back(id);
    }
  }
  return expiry;
}

}  // namespace portrelay::spool
