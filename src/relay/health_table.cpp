#include "portrelay/relay/health_table.hpp"

#include <algorithm>
#include <random>
#include <string>

namespace portrelay::relay {
namespace {

double random_jitter() {
  thread_local std::mt19937 generator{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.8, 1.2)(generator);
}

std::vector<EndpointIdentity> anonymous_chain(std::size_t endpoints) {
  std::vector<EndpointIdentity> chain;
  for (std::size_t i = 0; i < endpoints; ++i)
    chain.push_back({"endpoint-" + std::to_string(i), 0, TlsMode::None});
  return chain;
}

}  // namespace

HealthTable::HealthTable(std::vector<EndpointIdentity> chain, Duration base, Duration cap,
                         Jitter jitter, RecoverySchedule recovery)
    : chain_(std::move(chain)),
      base_(base),
      cap_(cap),
      jitter_(jitter ? std::move(jitter) : random_jitter),
      recovery_(recovery) {
  for (const auto& identity : chain_) entries_.try_emplace(identity);
}

HealthTable::HealthTable(std::size_t endpoints, Duration base, Duration cap, Jitter jitter,
                         RecoverySchedule recovery)
    : HealthTable(anonymous_chain(endpoints), base, cap, std::move(jitter), recovery) {}

void HealthTable::inherit(const HealthTable& previous, const std::set<EndpointIdentity>& fresh) {
  for (auto& [identity, entry] : entries_) {
    if (fresh.count(identity)) continue;
    const Entry* old = previous.find(identity);
    if (!old) continue;
    entry = *old;
    entry.probing = false;
    entry.refreshing = false;
  }
}

const HealthTable::Entry* HealthTable::find(const EndpointIdentity& identity) const {
  auto it = entries_.find(identity);
  return it == entries_.end() ? nullptr : &it->second;
}

bool HealthTable::cooling_down(std::size_t index, TimePoint now) const {
  return now < entry(index).cooldown_until;
}

bool HealthTable::unavailable(std::size_t index, TimePoint now) const {
  return cooling_down(index, now) || entry(index).probing;
}

bool HealthTable::all_unavailable(TimePoint now, const std::set<std::size_t>& exclude) const {
  bool any = false;
  for (std::size_t i = 0; i < chain_.size(); ++i) {
    if (exclude.count(i)) continue;
    if (!unavailable(i, now)) return false;
    any = true;
  }
  return any;
}

bool HealthTable::any_usable(TimePoint now) const {
  for (std::size_t i = 0; i < chain_.size(); ++i) {
    const Entry& candidate = entry(i);
    if (cooling_down(i, now)) continue;
    if (candidate.state == State::Unknown && candidate.refreshing) continue;
    return true;
  }
  return false;
}

void HealthTable::record_success(std::size_t index) {
  Entry& entry = mutable_entry(index);
  entry.state = State::Up;
  entry.consecutive_failures = 0;
  entry.cooldown_until = {};
  entry.next_probe = {};
  entry.last_failure.reset();
}

namespace {
// `first * 2^(failures-1)`, capped, times the jitter factor.
HealthTable::Duration backoff(HealthTable::Duration first, HealthTable::Duration cap,
                              unsigned failures, double jitter) {
  unsigned doublings = std::min(failures - 1, 20u);
  double length = static_cast<double>(first.count()) * static_cast<double>(1u << doublings);
  length = std::min(length, static_cast<double>(cap.count())) * jitter;
  return HealthTable::Duration(static_cast<HealthTable::Duration::rep>(length));
}
}  // namespace

void HealthTable::cool_down(Entry& entry, TimePoint now) {
  if (++entry.consecutive_failures == 1) entry.down_since = now;
  entry.cooldown_until = now + backoff(base_, cap_, entry.consecutive_failures, jitter_());
  // A 30th of the outage so far: short outages are noticed quickly, long ones cheaply.
  const auto outage = std::chrono::duration_cast<Duration>(now - entry.down_since);
  const Duration interval = std::clamp(outage / 30, recovery_.first, recovery_.max);
  entry.next_probe =
      now + Duration(static_cast<Duration::rep>(static_cast<double>(interval.count()) * jitter_()));
}

void HealthTable::record_failure(std::size_t index, FailureReason reason, TimePoint now) {
  Entry& entry = mutable_entry(index);
  entry.state = State::Down;
  entry.last_failure = reason;
  cool_down(entry, now);
}

void HealthTable::record_suspect(std::size_t index, TimePoint now) {
  Entry& entry = mutable_entry(index);
  if (entry.state == State::Up) entry.state = State::Unknown;
  cool_down(entry, now);
}

std::vector<std::size_t> HealthTable::preference_order(TimePoint now) const {
  std::vector<std::size_t> ready, cooling;
  for (std::size_t i = 0; i < chain_.size(); ++i)
    (unavailable(i, now) ? cooling : ready).push_back(i);
  ready.insert(ready.end(), cooling.begin(), cooling.end());
  return ready;
}

std::vector<std::size_t> HealthTable::preference_order(
    TimePoint now, const std::vector<std::size_t>& among) const {
  std::vector<std::size_t> ready, cooling;
  for (std::size_t i : among) (unavailable(i, now) ? cooling : ready).push_back(i);
  ready.insert(ready.end(), cooling.begin(), cooling.end());
  return ready;
}

std::vector<std::size_t> HealthTable::due_for_probe(TimePoint now, bool recovery) const {
  std::size_t best_up = chain_.size();
  for (std::size_t i = 0; i < chain_.size(); ++i)
    if (entry(i).state == State::Up && !cooling_down(i, now)) {
      best_up = i;
      break;
    }
  std::vector<std::size_t> due;
  for (std::size_t i = 0; i < best_up; ++i) {
    const Entry& candidate = entry(i);
    // A refresh probe already running gives the same answer.
    if (candidate.consecutive_failures == 0 || candidate.probing || candidate.refreshing) continue;
    if (!cooling_down(i, now) || (recovery && now >= candidate.next_probe)) due.push_back(i);
  }
  return due;
}

std::vector<std::size_t> HealthTable::due_for_refresh(TimePoint now) const {
  std::vector<std::size_t> due;
  if (refresh_interval_ <= Duration::zero()) return due;
  std::set<EndpointIdentity> seen;  // endpoints sharing an identity are probed once
  for (std::size_t i = 0; i < chain_.size(); ++i) {
    if (!seen.insert(chain_[i]).second) continue;
    const Entry& candidate = entry(i);
    if (candidate.probing || candidate.refreshing) continue;
    if (now >= candidate.next_refresh) due.push_back(i);
  }
  return due;
}

void HealthTable::checked(std::size_t index, TimePoint now) {
  if (refresh_interval_ <= Duration::zero()) return;
  // jitter_() is in [0.8, 1.2]; halving its spread above 0.8 gives [0.8, 1.0]: never
  // later than one interval, which is what the README promises.
  const double factor = 0.8 + (jitter_() - 0.8) / 2;
  mutable_entry(index).next_refresh =
      now +
      Duration(static_cast<Duration::rep>(static_cast<double>(refresh_interval_.count()) * factor));
}

}  // namespace portrelay::relay
