#pragma once
// spool::Clock: where the spool's time and chance come from. The daemon uses the system's
// (system_clock()); tests pass their own, so retries, expiry and jitter are checked under a
// fake clock, with no sleeps.
#include <cstdint>
#include <functional>

namespace portrelay::spool {

struct Clock {
  std::function<std::int64_t()> now_ms;   // Unix time in milliseconds
  std::function<double()> jitter;         // a factor in [0.8, 1.2] for a retry's delay
  std::function<std::uint32_t()> random;  // any 32 bits (the start of the queue id sequence)
};

// unix_ms_now() and one Mersenne Twister seeded from std::random_device.
Clock system_clock();

}  // namespace portrelay::spool
