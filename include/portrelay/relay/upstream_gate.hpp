#pragma once
// relay::UpstreamGate: what one upstream (a provider account, all its ports) allows now,
// and when it will allow more. Pure: every input carries the current time, so each rule is
// unit-tested under a fake clock, like HealthTable.
//
//  * Connections: at most `max_connections` at once across its ports, probes and pooled
//    ones included (connection_opened / connection_closed count them).
//  * Rate: a token bucket of `max_message_rate` per second holding `max_message_burst`
//    (1 by default: evenly spaced); start_message() takes a token.
//  * Pause: a throttling reply pauses the whole upstream for `throttle_backoff`, doubling
//    per throttle in a row up to `throttle_backoff_max`; a quota reply for
//    `quota_backoff` (or until `quota_until` when the caller knows the window's end);
//    `max_consecutive_refusals` transient refusals in a row pause it like a throttle
//    (outlier detection). A delivered message ends the run of refusals and throttles.
//  * Daily recipients: the caller's RecipientWindow (a rolling 24 hours in wall-clock
//    time, persisted) says when it has room again; the gate only takes that time.
//
// "May a message start now, and if not, when?" is message_wait(); the selector asks it
// before a race, the spool before a delivery.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace portrelay::relay {

struct GateLimits {
  using Duration = std::chrono::milliseconds;
  std::size_t max_connections = 0;  // 0: no cap
  double max_message_rate = 0;      // per second; 0: no rate limit
  std::size_t max_message_burst = 0;
  std::size_t max_consecutive_refusals = 3;  // 0: never pause for refusals
  Duration throttle_backoff{60000};
  Duration throttle_backoff_max{600000};
  Duration quota_backoff{3600000};
};

enum class PauseKind { Throttle, Quota, Refusals };
const char* to_string(PauseKind kind);

class UpstreamGate {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::milliseconds;
  // "Not before a connection is closed": no time can be given.
  static constexpr TimePoint kWhenConnectionFrees = TimePoint::max();

  UpstreamGate(GateLimits limits, TimePoint now);

  // nullopt: a message may start on this upstream now. Otherwise the earliest time it may
  // (kWhenConnectionFrees when only a closed connection can make room). `idle_connection`:
  // one of its connections waits in the pool (it needs no new connection).
  // `daily_room_at`: when its recipient window (max_recipients_per_day) has room again;
  // nullopt or a past time: it has room now.
  std::optional<TimePoint> message_wait(TimePoint now, bool idle_connection,
                                        std::optional<TimePoint> daily_room_at = {}) const;
  // A message starts (takes a token; a bucket may go one message into debt when the caller
  // started it without asking, as after a failover inside one race).
  void start_message(TimePoint now);
  // A started message did not use the upstream after all (the race went elsewhere).
  void refund_message(TimePoint now);

  bool may_connect() const {
    return !limits_.max_connections || connections_ < limits_.max_connections;
  }
  void connection_opened() { ++connections_; }
  void connection_closed() {
    if (connections_ > 0) --connections_;
  }
  std::size_t connections() const { return connections_; }

  // The upstream answered a throttling or quota reply: paused. `until` (quota): the time the
  // daily window allows more, when known; else quota_backoff. While a pause is on, another
  // throttle changes nothing (it answers a message already in flight); a quota reply still
  // lengthens a throttle pause to a quota one.
  void throttled(TimePoint now, PauseKind kind, std::optional<TimePoint> until = std::nullopt);
  // Another loop's gate of the same upstream paused it ([server] workers): this one is
  // paused until the same time, with no effect on its own throttle count.
  void adopt_pause(TimePoint until, PauseKind kind) {
    if (until <= paused_until_) return;
    paused_until_ = until;
    pause_kind_ = kind;
  }
  // A transient refusal at MAIL, DATA or end of data. True when it paused the upstream.
  bool refused(TimePoint now);
  // A message was delivered: the runs of refusals and of throttles are over.
  void delivered();

  bool paused(TimePoint now) const { return now < paused_until_; }
  TimePoint paused_until() const { return paused_until_; }
  std::optional<PauseKind> pause_kind() const { return pause_kind_; }
  double tokens(TimePoint now) const;
  std::size_t consecutive_refusals() const { return refusals_; }
  const GateLimits& limits() const { return limits_; }

 private:
  double capacity() const;
  void refill(TimePoint now);
  void pause(TimePoint now, Duration length, PauseKind kind);

  GateLimits limits_;
  std::size_t connections_ = 0;
  double tokens_ = 0;
  TimePoint refilled_{};
  TimePoint paused_until_{};
  std::optional<PauseKind> pause_kind_;
  std::size_t throttles_in_a_row_ = 0;
  std::size_t refusals_ = 0;
};

}  // namespace portrelay::relay
