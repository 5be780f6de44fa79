#include "portrelay/spool/clock.hpp"

#include <memory>
#include <random>

#include "portrelay/spool/spool_directory.hpp"

namespace portrelay::spool {

Clock system_clock() {
  auto engine = std::make_shared<std::mt19937>(std::random_device{}());
  Clock clock;
  clock.now_ms = []() { return unix_ms_now(); };
  clock.jitter = [engine]() { return std::uniform_real_distribution<double>(0.8, 1.2)(*engine); };
  clock.random = [engine]() { return static_cast<std::uint32_t>((*engine)()); };
  return clock;
}

}  // namespace portrelay::spool
