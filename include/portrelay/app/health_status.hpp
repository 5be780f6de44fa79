#pragma once
// What /healthz and /readyz answer. The loop thread writes (beat(), every second from a
// timer on the loop); the HTTP threads of the metrics listener read. Pure apart from the
// mutex: the caller passes the time, so the deadlines are tested with a fake clock.
//
//  * /healthz (liveness): 200 while the event loop stamped a beat within `loop_deadline`.
//    An HTTP thread that still answers says nothing about a loop stuck in a busy callback
//    or a deadlock; the beat does, and a restart is the cure for either.
//  * /readyz (readiness): 200 when the loop is alive and its last beat found the daemon
//    ready (listeners bound, at least one endpoint usable), else 503 with one line saying
//    why.
#include <chrono>
#include <mutex>
#include <optional>
#include <string>

namespace portrelay {

class HealthStatus {
 public:
  using Clock = std::chrono::steady_clock;

  struct Answer {
    int status;        // HTTP status: 200 or 503
    std::string body;  // one line, ending in "\n"
  };

  explicit HealthStatus(Clock::duration loop_deadline = std::chrono::seconds(5))
      : loop_deadline_(loop_deadline) {}

  // The loop is alive at `now`; `not_ready` is why the daemon cannot take mail (nullopt:
  // it can).
  void beat(Clock::time_point now, std::optional<std::string> not_ready);

  Answer liveness(Clock::time_point now) const;
  Answer readiness(Clock::time_point now) const;

 private:
  // nullopt unless the last beat is within the deadline; else why not.
  std::optional<std::string> loop_stale(Clock::time_point now) const;

  const Clock::duration loop_deadline_;
  mutable std::mutex mutex_;
  std::optional<Clock::time_point> last_beat_;
  std::optional<std::string> not_ready_ = std::string("starting");
};

}  // namespace portrelay
