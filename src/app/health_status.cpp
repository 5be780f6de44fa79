#include "portrelay/app/health_status.hpp"

namespace portrelay {

void HealthStatus::beat(Clock::time_point now, std::optional<std::string> not_ready) {
  std::lock_guard lock(mutex_);
  last_beat_ = now;
  not_ready_ = std::move(not_ready);
}

std::optional<std::string> HealthStatus::loop_stale(Clock::time_point now) const {
  if (!last_beat_) return "event loop has not started";
  const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(now - *last_beat_);
  if (now - *last_beat_ <= loop_deadline_) return std::nullopt;
  return "event loop has not answered for " + std::to_string(age.count()) + " ms";
}

HealthStatus::Answer HealthStatus::liveness(Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  if (auto stale = loop_stale(now)) return {503, *stale + "\n"};
  return {200, "ok\n"};
}

HealthStatus::Answer HealthStatus::readiness(Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  if (auto stale = loop_stale(now)) return {503, *stale + "\n"};
  if (not_ready_) return {503, *not_ready_ + "\n"};
  return {200, "ready\n"};
}

}  // namespace portrelay
