#include "portrelay/relay/race_plan.hpp"

#include <algorithm>

namespace portrelay::relay {

RacePlan::RacePlan(std::vector<std::size_t> candidates, Duration stagger, std::size_t max_parallel,
                   std::optional<Duration> abandon_after)
    : candidates_(std::move(candidates)),
      stagger_(stagger),
      max_parallel_(max_parallel),
      abandon_after_(abandon_after) {}

RacePlan::Actions RacePlan::start(TimePoint now) {
  started_ = now;
  Actions actions;
  launch_next(actions, now);
  finish_if_lost(actions);
  return actions;
}

bool RacePlan::launch_next(Actions& actions, TimePoint now) {
  if (finished_ || next_ >= candidates_.size() || running_.size() >= max_parallel_) return false;
  std::size_t endpoint = candidates_[next_++];
  running_.push_back({endpoint, now});
  actions.push_back({Action::Kind::Launch, endpoint});
  wake(actions, now);
  return true;
}

// A stagger from now while candidates wait; the abandon deadline instead when it is sooner
// or nothing waits.
void RacePlan::wake(Actions& actions, TimePoint now) {
  std::optional<TimePoint> at;
  if (next_ < candidates_.size()) at = now + stagger_;
  wake_abandons_ = false;
  if (abandon_after_) {
    TimePoint deadline = started_ + *abandon_after_;
    if (!at || deadline <= *at) {
      at = deadline;
      wake_abandons_ = true;
    }
  }
  if (at) actions.push_back({.kind = Action::Kind::WakeAt, .at = *at});
}

void RacePlan::abandon(Actions& actions) {
  for (const auto& running : running_)
    actions.push_back({Action::Kind::Cancel, running.endpoint});  // not suspect: already cooling
  running_.clear();
  finished_ = true;
  actions.push_back({Action::Kind::Abandoned});
}

void RacePlan::finish_if_lost(Actions& actions) {
  if (finished_ || !running_.empty() || next_ < candidates_.size()) return;
  finished_ = true;
  actions.push_back({Action::Kind::Lost});
}

RacePlan::Actions RacePlan::stagger_elapsed(TimePoint now) {
  Actions actions;
  if (finished_) return actions;
  if (wake_abandons_) {
    abandon(actions);
    return actions;
  }
  for (auto& running : running_) running.outlasted_stagger = true;
  // Without a launch (max_parallel attempts run) the abandon deadline still needs a wake-up.
  if (!launch_next(actions, now) && abandon_after_) wake(actions, now);
  return actions;
}

RacePlan::Actions RacePlan::ready(std::size_t endpoint, TimePoint now) {
  Actions actions;
  if (finished_) return actions;
  auto winner = std::find_if(running_.begin(), running_.end(),
                             [endpoint](const Running& r) { return r.endpoint == endpoint; });
  if (winner == running_.end()) return actions;
  running_.erase(winner);
  finished_ = true;
  for (const auto& loser : running_) {
    Action cancel{Action::Kind::Cancel, loser.endpoint};
    cancel.suspect = loser.outlasted_stagger || now - loser.started >= stagger_;
    actions.push_back(cancel);
  }
  running_.clear();
  actions.push_back({Action::Kind::Won, endpoint});
  return actions;
}

RacePlan::Actions RacePlan::failed(std::size_t endpoint, bool pooled, TimePoint now) {
  Actions actions;
  if (finished_) return actions;
  auto it = std::find_if(running_.begin(), running_.end(),
                         [endpoint](const Running& r) { return r.endpoint == endpoint; });
  if (it == running_.end()) return actions;
  if (pooled) {
    // Died while idle in the pool: not the endpoint's fault. Try it again.
    it->started = now;
    it->outlasted_stagger = false;
    actions.push_back({Action::Kind::Launch, endpoint});
    return actions;
  }
  running_.erase(it);
  launch_next(actions, now);  // a failure does not wait for the stagger
  finish_if_lost(actions);
  return actions;
}

std::string to_string(const RacePlan::Action& action) {
  using Kind = RacePlan::Action::Kind;
  std::string index = std::to_string(action.endpoint);
  switch (action.kind) {
    case Kind::Launch:
      return "launch " + index;
    case Kind::Cancel:
      return "cancel " + index + (action.suspect ? " suspect" : "");
    case Kind::WakeAt:
      return "wake";
    case Kind::Won:
      return "won " + index;
    case Kind::Lost:
      return "lost";
    case Kind::Abandoned:
      return "abandoned";
  }
  return "unknown";
}

}  // namespace portrelay::relay
