#include "portrelay/relay/upstream_gate.hpp"

#include <algorithm>
#include <cmath>

namespace portrelay::relay {

const char* to_string(PauseKind kind) {
  switch (kind) {
    case PauseKind::Throttle:
      return "throttle";
    case PauseKind::Quota:
      return "quota";
    case PauseKind::Refusals:
      return "refusals";
  }
  return "throttle";
}

UpstreamGate::UpstreamGate(GateLimits limits, TimePoint now)
    : limits_(limits), tokens_(capacity()), refilled_(now) {}

// The bucket holds max_message_burst, by default 1: messages leave evenly spaced, so the
// provider's own bucket (usually a second's worth) absorbs network jitter instead of being
// emptied by our burst and then refilled out of phase with us.
double UpstreamGate::capacity() const {
  if (limits_.max_message_burst > 0) return static_cast<double>(limits_.max_message_burst);
  return 1.0;
}

double UpstreamGate::tokens(TimePoint now) const {
  if (limits_.max_message_rate <= 0) return capacity();
  const double elapsed = std::chrono::duration<double>(now - refilled_).count();
  return std::min(capacity(), tokens_ + std::max(0.0, elapsed) * limits_.max_message_rate);
}

void UpstreamGate::refill(TimePoint now) {
  if (now <= refilled_) return;
  tokens_ = tokens(now);
  refilled_ = now;
}

std::optional<UpstreamGate::TimePoint> UpstreamGate::message_wait(
    TimePoint now, bool idle_connection, std::optional<TimePoint> daily_room_at) const {
  TimePoint at = now;
  if (paused(now)) at = paused_until_;
  if (daily_room_at) at = std::max(at, *daily_room_at);
  if (limits_.max_message_rate > 0) {
    const double missing = 1.0 - tokens(now);
    if (missing > 1e-9) {
      // Whole milliseconds, rounded up: a timer armed for that time finds the token there.
      const auto wait = std::chrono::milliseconds(
          static_cast<std::int64_t>(std::ceil(missing / limits_.max_message_rate * 1000.0)));
      at = std::max(at, now + wait);
    }
  }
  if (!idle_connection && !may_connect()) return kWhenConnectionFrees;
  if (at <= now) return std::nullopt;
  return at;
}

void UpstreamGate::start_message(TimePoint now) {
  if (limits_.max_message_rate <= 0) return;
  refill(now);
  tokens_ -= 1.0;
}

void UpstreamGate::refund_message(TimePoint now) {
  if (limits_.max_message_rate <= 0) return;
  refill(now);
  tokens_ = std::min(capacity(), tokens_ + 1.0);
}

void UpstreamGate::pause(TimePoint now, Duration length, PauseKind kind) {
  paused_until_ = std::max(paused_until_, now + length);
  pause_kind_ = kind;
}

void UpstreamGate::throttled(TimePoint now, PauseKind kind, std::optional<TimePoint> until) {
  refusals_ = 0;
  // The messages that were in flight when the pause began get the same answer: they are
  // part of it, not a new throttle (which would double the pause once per message).
  if (paused(now) && (pause_kind_ == kind || kind != PauseKind::Quota)) return;
  if (kind == PauseKind::Quota) {
    const TimePoint end = until && *until > now ? *until : now + limits_.quota_backoff;
    pause(now, std::chrono::ceil<Duration>(end - now), kind);
    return;
  }
  // 60 s, 120 s, 240 s ... up to the maximum: each throttle in a row doubles the pause.
  Duration length = limits_.throttle_backoff;
  for (std::size_t i = 0; i < throttles_in_a_row_ && length < limits_.throttle_backoff_max; ++i)
    length *= 2;
  length = std::min(length, limits_.throttle_backoff_max);
  ++throttles_in_a_row_;
  pause(now, length, kind);
}

bool UpstreamGate::refused(TimePoint now) {
  if (paused(now)) return false;  // a message in flight when the pause began
  ++refusals_;
  if (limits_.max_consecutive_refusals == 0 || refusals_ < limits_.max_consecutive_refusals)
    return false;
  throttled(now, PauseKind::Throttle);
  pause_kind_ = PauseKind::Refusals;
  return true;
}

void UpstreamGate::delivered() {
  refusals_ = 0;
  throttles_in_a_row_ = 0;
}

}  // namespace portrelay::relay
