#include "portrelay/server/auth_failure_tracker.hpp"

#include <algorithm>

namespace portrelay::server {

unsigned AuthFailureTracker::failures(const std::string& address, Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  return failures_locked(address, now);
}

unsigned AuthFailureTracker::failures_locked(const std::string& address,
                                             Clock::time_point now) const {
  auto it = entries_.find(address);
  if (it == entries_.end() || now - it->second.last >= limits_.forget_after) return 0;
  return it->second.failures;
}

AuthFailureTracker::Duration AuthFailureTracker::current_delay(const std::string& address,
                                                               Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  const unsigned count = failures_locked(address, now);
  if (count == 0) return Duration::zero();
  return limits_.base_delay * (1u << std::min(count - 1, limits_.max_doublings));
}

void AuthFailureTracker::make_room(Clock::time_point now) {
  std::erase_if(entries_,
                [&](const auto& entry) { return now - entry.second.last >= limits_.forget_after; });
  if (entries_.size() < limits_.max_addresses) return;
  auto oldest =
      std::min_element(entries_.begin(), entries_.end(),
                       [](const auto& a, const auto& b) { return a.second.last < b.second.last; });
  entries_.erase(oldest);
}

AuthFailureTracker::Duration AuthFailureTracker::record_failure(const std::string& address,
                                                                Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(address);
  if (it == entries_.end()) {
    if (entries_.size() >= limits_.max_addresses) make_room(now);
    it = entries_.emplace(address, Entry{}).first;
  } else if (now - it->second.last >= limits_.forget_after) {
    it->second.failures = 0;
  }
  Entry& entry = it->second;
  entry.failures = std::min(entry.failures + 1, 1000u);
  entry.last = now;
  const unsigned doublings = std::min(entry.failures - 1, limits_.max_doublings);
  return limits_.base_delay * (1u << doublings);
}

}  // namespace portrelay::server
