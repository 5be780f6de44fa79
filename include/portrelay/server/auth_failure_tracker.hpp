#pragma once
// Failed client AUTH attempts per client address, so that guessing passwords gets slower
// the more a source tries, whatever connection it uses. Pure: the time is a parameter.
//
// Each failure from an address makes the next 535 to that address wait longer: `base`,
// then 2x, 4x, 8x `base` (the cap). An address that has not failed for `forget_after` starts
// over. At most `max_addresses` addresses are remembered (the one that failed longest ago
// is forgotten first), so a flood from many addresses costs bounded memory.
//
// Thread-safe (one mutex over the map): with [server] workers every loop's server shares
// one tracker, so a guesser's connections spread over the loops still slow each other down.
#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

namespace portrelay::server {

class AuthFailureTracker {
 public:
  using Clock = std::chrono::steady_clock;
  using Duration = std::chrono::milliseconds;

  struct Limits {
    Duration base_delay = std::chrono::seconds(1);
    unsigned max_doublings = 3;  // base, 2x, 4x, 8x
    Duration forget_after = std::chrono::minutes(15);
    std::size_t max_addresses = 4096;
  };

  explicit AuthFailureTracker(Limits limits) : limits_(limits) {}
  // A reload changed the delay: what was remembered about each address is kept.
  void set_base_delay(Duration base_delay) {
    std::lock_guard lock(mutex_);
    limits_.base_delay = base_delay;
  }

  // Records a failure from `address` and returns how long to wait before answering it.
  Duration record_failure(const std::string& address, Clock::time_point now);
  // How long an answer to `address` that is not a success should wait, without counting a
  // new failure: zero for an address without recent failures. Used for 454 (checks busy),
  // so a flooding address cannot spin on cheap refusals.
  Duration current_delay(const std::string& address, Clock::time_point now) const;
  // Failures remembered for `address` (0 if none or forgotten).
  unsigned failures(const std::string& address, Clock::time_point now) const;
  std::size_t addresses() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }

 private:
  struct Entry {
    unsigned failures = 0;
    Clock::time_point last;
  };
  void make_room(Clock::time_point now);
  unsigned failures_locked(const std::string& address, Clock::time_point now) const;

  Limits limits_;
  std::unordered_map<std::string, Entry> entries_;
  mutable std::mutex mutex_;
};

}  // namespace portrelay::server
