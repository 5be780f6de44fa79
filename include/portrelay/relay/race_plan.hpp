#pragma once
// relay::RacePlan: the decisions of racing a message's candidate endpoints (Happy
// Eyeballs applied to a chain of ports), with no I/O and no timers. Pure: every input
// carries the current time, so the timing rules are unit-tested with a fake clock.
//
//  * The first candidate starts at once; every `stagger` another one starts while fewer
//    than `max_parallel` run; a failure starts the next one at once.
//  * The first attempt to be ready wins; the others are cancelled. A loser that was still
//    not ready a whole stagger after it started is *suspect* (a silently dropped SYN or a
//    tarpit never fails before the winner appears): the caller cools it down.
//  * An attempt on a pooled connection that fails says nothing about the endpoint: the
//    same endpoint is tried again (the next pooled connection, or a connect). A failed
//    connect is the caller's to record (it knows the reason); the plan only moves on.
//  * When every candidate has failed and nothing runs, the race is over without a winner.
//  * With `abandon_after` (the caller knows every candidate is cooling down), the race is
//    given up that long after it started: what still runs is cancelled (not suspect, not a
//    failure) and the race is over without a winner. A candidate that has recovered and
//    answers quickly still wins; a silent one no longer costs the client connect_timeout.
//
// RacingSelector's Race is the glue: it carries out the actions with connections, the
// pool and a timer.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace portrelay::relay {

class RacePlan {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::milliseconds;

  struct Action {
    enum class Kind {
      Launch,     // start an attempt on `endpoint`: a pooled connection if any, else a connect
      Cancel,     // close the attempt on `endpoint`; `suspect`: cool it down, not counted
      WakeAt,     // call stagger_elapsed() at `at` (replaces an earlier wake-up)
      Won,        // `endpoint` is the winner; the race is over
      Lost,       // no candidate could be made ready; the race is over
      Abandoned,  // abandon_after passed without a winner (Cancels came first); over
    };
    Kind kind;
    std::size_t endpoint = 0;
    bool suspect = false;
    TimePoint at{};
  };
  using Actions = std::vector<Action>;

  RacePlan(std::vector<std::size_t> candidates, Duration stagger, std::size_t max_parallel,
           std::optional<Duration> abandon_after = std::nullopt);

  Actions start(TimePoint now);
  Actions stagger_elapsed(TimePoint now);
  Actions ready(std::size_t endpoint, TimePoint now);
  // `pooled`: the attempt ran on a connection from the pool.
  Actions failed(std::size_t endpoint, bool pooled, TimePoint now);

  bool finished() const { return finished_; }
  const std::vector<std::size_t>& candidates() const { return candidates_; }

 private:
  struct Running {
    std::size_t endpoint;
    TimePoint started;
    // The stagger timer went off while it ran: by the timer's own judgment it was not ready
    // a stagger after it started, whatever a coarse or late clock says.
    bool outlasted_stagger = false;
  };
  // Whether it launched one.
  bool launch_next(Actions& actions, TimePoint now);
  void wake(Actions& actions, TimePoint now);
  void finish_if_lost(Actions& actions);
  void abandon(Actions& actions);

  std::vector<std::size_t> candidates_;
  Duration stagger_;
  std::size_t max_parallel_;
  std::optional<Duration> abandon_after_;
  TimePoint started_{};
  // The last WakeAt asked for is the abandon deadline: when it comes, give up. The timer's
  // word is taken over a clock comparison (a loop's cached time may fire a timer early).
  bool wake_abandons_ = false;
  std::size_t next_ = 0;
  std::vector<Running> running_;
  bool finished_ = false;
};

std::string to_string(const RacePlan::Action& action);  // for tests: "launch 2", "cancel 0 suspect"

}  // namespace portrelay::relay
