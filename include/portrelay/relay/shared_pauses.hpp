#pragma once
// relay::SharedPauses: the pauses of the daemon's upstreams, for every loop's selector
// ([server] workers). Each selector has its own UpstreamGate per upstream; when one of them
// pauses its upstream (a throttling or quota reply, max_consecutive_refusals in a row), the
// selector publishes the end of the pause here, and the other loops' selectors take it over
// the next time they plan a race (adopt()): one loop's throttle holds every loop back, so
// no loop hits the provider's limit again to learn it. How long a pause lasts (doubling per
// throttle in a row) is decided by the gate that was throttled.
//
// Thread-safe: one mutex over a small map; `version()` lets a selector skip the lock when
// nothing changed since it last looked (the common case, on every message).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "portrelay/relay/upstream_gate.hpp"

namespace portrelay::relay {

class SharedPauses {
 public:
  using TimePoint = UpstreamGate::TimePoint;
  struct Pause {
    TimePoint until{};
    PauseKind kind = PauseKind::Throttle;
  };

  // `upstream` (by name) is paused until `until`; a later end than the one known wins.
  void publish(const std::string& upstream, TimePoint until, PauseKind kind);
  // The latest pause published for `upstream`, if any.
  std::optional<Pause> find(const std::string& upstream) const;
  // Changes with every publish().
  std::uint64_t version() const { return version_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, Pause, std::less<>> pauses_;
  std::atomic<std::uint64_t> version_{0};
};

}  // namespace portrelay::relay
