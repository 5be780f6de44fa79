#include "portrelay/relay/racing_selector.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "portrelay/base/log.hpp"
#include "portrelay/relay/race_plan.hpp"
#include "portrelay/relay/recipient_window_file.hpp"
#include "portrelay/relay/transaction.hpp"  // throttle_kind

namespace portrelay::relay {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<EndpointIdentity> identities(const std::vector<EndpointRuntimePtr>& endpoints) {
  std::vector<EndpointIdentity> out;
  for (const auto& runtime : endpoints) out.push_back(identity_of(runtime->endpoint));
  return out;
}

}  // namespace

RacingOptions RacingOptions::from(const config::RelayConfig& relay) {
  RacingOptions options;
  options.stagger = relay.stagger;
  options.max_parallel = relay.max_parallel;
  options.cooldown = relay.cooldown;
  options.cooldown_max = relay.cooldown_max;
  options.pool_idle_timeout = relay.pool_idle_timeout;
  options.pool_max_per_endpoint = relay.pool_max_per_endpoint;
  options.recovery_probe_min = relay.recovery_probe_min;
  options.recovery_probe_max = relay.recovery_probe_max;
  options.refresh_interval = relay.probe_interval;
  options.limit_wait = relay.max_limit_wait;
  options.gate_defaults.throttle_backoff =
      std::chrono::duration_cast<GateLimits::Duration>(relay.throttle_backoff);
  options.gate_defaults.throttle_backoff_max =
      std::chrono::duration_cast<GateLimits::Duration>(relay.throttle_backoff_max);
  options.gate_defaults.quota_backoff =
      std::chrono::duration_cast<GateLimits::Duration>(relay.quota_backoff);
  options.gate_defaults.max_consecutive_refusals = relay.max_consecutive_refusals;
  return options;
}

RacingOptions RacingOptions::from(const config::Config& config) {
  RacingOptions options = from(config.relay);
  options.upstreams = config.upstreams;
  if (config.relay.uses_spool()) options.recipient_window_dir = config.spool.dir + "/limits";
  return options;
}

struct RacingSelector::DailyCount {
  RecipientWindow window;
  bool dirty = false;  // changed since it was last written
};

// One gate per upstream, shared with the leases of its connections: a connection may be
// destroyed after the selector (a session still holding it), and gives its slot back here.
struct RacingSelector::Gates {
  std::vector<UpstreamGate> gates;
  std::vector<config::UpstreamLimits> limits;
  std::vector<std::string> names;
  // max_recipients_per_day: each upstream's window (null: no such limit). Shared with the
  // selector of a reloaded configuration, which goes on counting in the same one.
  std::vector<std::shared_ptr<DailyCount>> daily;
  std::function<void(std::size_t upstream)> on_closed;  // the selector's, while it lives
};

namespace {
// A slot of an upstream's max_connections, held by one connection until it is destroyed.
struct ConnectionLease {
  std::shared_ptr<void> gates;  // keeps the table alive
  UpstreamGate* gate;
  std::function<void(std::size_t)>* on_closed;
  std::size_t upstream;
  ~ConnectionLease() {
    gate->connection_closed();
    if (*on_closed) (*on_closed)(upstream);
  }
};
}  // namespace

// The glue around a RacePlan: carries out its actions with connections (pooled ones
// revalidated first), one timer, metrics and the health table.
class RacingSelector::Race : public SelectionAttempt {
  using TimePoint = Clock::time_point;

 public:
  Race(RacingSelector& selector, const config::Route& route, const std::set<std::size_t>& exclude,
       Callback callback)
      : selector_(selector),
        callback_(std::move(callback)),
        route_(route),
        exclude_(exclude),
        deadline_(Clock::now() + selector.options_.limit_wait),
        timer_(selector.loop_.uv()) {
    // The message's token is taken now, not when the race starts on the next turn, so a
    // caller that starts several at once (the spool's pump) sees what is left.
    const bool ready = admit(Clock::now());
    // select() never calls back from inside itself: the race starts on the next turn.
    timer_.start(std::chrono::milliseconds(0), [this, ready]() {
      if (ready)
        begin();
      else
        wait_for_limits();
    });
  }

  ~Race() override {
    for (auto& attempt : running_)
      selector_.metrics_.connect_cancelled(attempt.connection->endpoint());
    stop_waiting();
    give_back();
  }

  // An upstream's limits may allow more (a connection closed): look again.
  void limits_changed() {
    if (plan_ || !callback_) return;
    timer_.stop();
    wait_for_limits();
  }

 private:
  struct Running {
    std::size_t index;
    std::unique_ptr<UpstreamConnection> connection;
    bool reused;  // taken from the pool
  };

  // The candidates whose upstream may take a message now. Those held back by their limits
  // are left out (and `limited_`, with the earliest time one may, is set); when none is
  // left, nothing is taken. Otherwise the message's token is taken from the first one's
  // upstream, and a connection slot reserved there unless an idle connection waits.
  bool admit(TimePoint now) {
    selector_.adopt_shared_pauses();
    candidates_.clear();
    limited_.clear();
    wake_at_ = UpstreamGate::kWhenConnectionFrees;
    std::map<std::size_t, std::optional<TimePoint>> waits;  // by upstream
    // Taken first: the table may be shared with other loops and stays locked only for this.
    const auto order = selector_.health_->lock()->preference_order(now, route_.endpoints);
    for (std::size_t index : order) {
      if (exclude_.count(index)) continue;
      const std::size_t upstream = selector_.upstream_of(index);
      auto found = waits.find(upstream);
      if (found == waits.end())
        found =
            waits.emplace(upstream, selector_.upstream_wait(upstream, now, idle(upstream))).first;
      if (found->second) {
        limited_.push_back(index);
        wake_at_ = std::min(wake_at_, *found->second);
        continue;
      }
      candidates_.push_back(index);
    }
    if (candidates_.empty()) return false;
    reserved_upstream_ = selector_.upstream_of(candidates_.front());
    UpstreamGate& gate = selector_.gate(candidates_.front());
    gate.start_message(now);
    if (!idle(*reserved_upstream_) &&
        selector_.gates_->limits[*reserved_upstream_].max_connections > 0) {
      gate.connection_opened();  // held for this race's first connect there
      slot_reserved_ = true;
    }
    selector_.publish_gate(*reserved_upstream_);
    return true;
  }

  // An idle pooled connection of the upstream on an endpoint this race may use.
  bool idle(std::size_t upstream) const {
    for (std::size_t index = 0; index < selector_.endpoints_.size(); ++index)
      if (!exclude_.count(index) && selector_.upstream_of(index) == upstream &&
          selector_.pool_.idle(index) > 0)
        return true;
    return false;
  }

  // Nothing may start now: wait for the earliest time a limit allows (or a connection
  // closes), up to the deadline; then give up with Limited.
  void wait_for_limits() {
    const TimePoint now = Clock::now();
    if (admit(now)) {
      stop_waiting();
      return begin();
    }
    if (limited_.empty()) return begin();  // nothing left at all: the plan says Lost
    // Past the deadline, or no limit allows a message before it (a pause of a minute when
    // the client may wait 5 s): give up now rather than make the client wait for nothing.
    const bool hopeless = wake_at_ != UpstreamGate::kWhenConnectionFrees && wake_at_ > deadline_;
    if (now >= deadline_ || hopeless) {
      stop_waiting();
      for (std::size_t index : limited_)
        selection_.failures.push_back(
            {index, {FailureReason::Limited, "held back by the upstream's limits"}});
      log::info("race_limited", {{"skipped", std::to_string(limited_.size())}});
      return finish(std::nullopt);
    }
    if (std::find(selector_.waiting_.begin(), selector_.waiting_.end(), this) ==
        selector_.waiting_.end())
      selector_.waiting_.push_back(this);
    const TimePoint until = std::min(wake_at_, deadline_);
    timer_.start(std::chrono::ceil<std::chrono::milliseconds>(until - now),
                 [this]() { wait_for_limits(); });
  }

  void stop_waiting() {
    auto& waiting = selector_.waiting_;
    waiting.erase(std::remove(waiting.begin(), waiting.end(), this), waiting.end());
  }

  void begin() {
    plan_.emplace(candidates_, selector_.options_.stagger, selector_.options_.max_parallel,
                  abandon_after(selector_, route_, exclude_));
    run(plan_->start(Clock::now()));
  }

  // What the race took and did not use goes back: the token when no message went to that
  // upstream, the reserved slot when no connection took it.
  void give_back() {
    if (!reserved_upstream_) return;
    UpstreamGate& gate = selector_.gates_->gates[*reserved_upstream_];
    if (slot_reserved_) {
      gate.connection_closed();
      slot_reserved_ = false;
      selector_.capacity_changed();
    }
    gate.refund_message(Clock::now());
    selector_.publish_gate(*reserved_upstream_);
    reserved_upstream_.reset();
  }

  // Every endpoint left is cooling down (or being probed): one that has recovered and
  // answers within a stagger still wins, but the client does not wait connect_timeout on
  // one the relay already knows is dead.
  static std::optional<RacePlan::Duration> abandon_after(const RacingSelector& selector,
                                                         const config::Route& route,
                                                         const std::set<std::size_t>& exclude) {
    // Endpoints off the route count as excluded: only the route's own are raced.
    std::set<std::size_t> off_route = exclude;
    for (std::size_t index = 0; index < selector.endpoints_.size(); ++index)
      if (std::find(route.endpoints.begin(), route.endpoints.end(), index) == route.endpoints.end())
        off_route.insert(index);
    if (!selector.health_->lock()->all_unavailable(Clock::now(), off_route)) return std::nullopt;
    return selector.options_.stagger;
  }

  const config::Endpoint& endpoint(std::size_t index) const {
    return selector_.endpoints_[index]->endpoint;
  }

  std::vector<Running>::iterator find(std::size_t index) {
    return std::find_if(running_.begin(), running_.end(),
                        [index](const Running& r) { return r.index == index; });
  }

  void run(const RacePlan::Actions& actions) {
    using Kind = RacePlan::Action::Kind;
    for (const auto& action : actions) {
      switch (action.kind) {
        case Kind::Launch:
          launch(action.endpoint);
          break;
        case Kind::Cancel:
          cancel(action.endpoint, action.suspect);
          break;
        case Kind::WakeAt:
          timer_.start(std::chrono::ceil<std::chrono::milliseconds>(action.at - Clock::now()),
                       [this]() { run(plan_->stagger_elapsed(Clock::now())); });
          break;
        case Kind::Won:
          return finish(action.endpoint);
        case Kind::Lost:
          // Every attempt was held back by its upstream's connection cap (another race
          // took the slot first): wait for the limits again rather than fail.
          // Not at once (that could go round without end): when a connection closes
          // (limits_changed) or at the deadline.
          if (held_back_ > 0 && selection_.failures.empty() && Clock::now() < deadline_) {
            held_back_ = 0;
            plan_.reset();
            give_back();
            selector_.waiting_.push_back(this);
            timer_.start(std::chrono::ceil<std::chrono::milliseconds>(deadline_ - Clock::now()),
                         [this]() { wait_for_limits(); });
            return;
          }
          return finish(std::nullopt);
        case Kind::Abandoned:
          return abandoned();
      }
    }
  }

  // An attempt on one endpoint: a pooled connection if there is one (checked with RSET),
  // otherwise a fresh connect.
  void launch(std::size_t index) {
    // Paused since this race began (a port of the same account answered its greeting with
    // a throttle): the account's other ports would hear the same, so they are not tried.
    if (selector_.gate(index).paused(Clock::now())) {
      selection_.failures.push_back({index, {FailureReason::Limited, "the upstream is paused"}});
      return run(plan_->failed(index, false, Clock::now()));
    }
    auto pooled = selector_.pool_.take(index);
    bool reused = pooled != nullptr;
    std::unique_ptr<UpstreamConnection> connection;
    if (reused) {
      connection = std::move(pooled);
    } else {
      const std::size_t upstream = selector_.upstream_of(index);
      const bool use_reserved = slot_reserved_ && reserved_upstream_ == upstream;
      if (!use_reserved && !selector_.gate(index).may_connect()) {
        // The upstream's connections are all in use: not a failure of the endpoint.
        ++held_back_;
        return run(plan_->failed(index, false, Clock::now()));
      }
      if (use_reserved) {
        slot_reserved_ = false;
        selector_.gate(index).connection_closed();  // the lease below takes it again
      }
      connection = selector_.new_connection(index);
    }
    UpstreamConnection* raw = connection.get();
    running_.push_back({index, std::move(connection), reused});
    auto on_done = [this, index](std::optional<AttemptFailure> failure) {
      on_result(index, failure);
    };
    if (reused) {
      raw->mark_reused();
      raw->revalidate(selector_.timeouts_.pool_check, selector_.timeouts_.pool_check_after,
                      on_done);
    } else {
      raw->connect(on_done);
    }
  }

  void on_result(std::size_t index, const std::optional<AttemptFailure>& failure) {
    auto it = find(index);
    if (it == running_.end()) return;
    if (!failure) return run(plan_->ready(index, Clock::now()));
    bool reused = it->reused;
    selector_.loop_.defer_delete(std::move(it->connection));  // inside its own callback
    running_.erase(it);
    if (reused) {
      log::info("pooled_connection_dead",
                {{"endpoint", endpoint(index).label()}, {"detail", failure->detail}});
    } else {
      selector_.record_failure(index, *failure);
      selection_.failures.push_back({index, *failure});
    }
    run(plan_->failed(index, reused, Clock::now()));
  }

  void cancel(std::size_t index, bool suspect) {
    auto it = find(index);
    if (it == running_.end()) return;
    const auto& lost = it->connection->endpoint();
    selector_.metrics_.connect_cancelled(lost);
    // Remembered as suspect so the next messages do not wait on it again: a port that
    // drops SYNs never fails before the winner appears, and one that accepts TCP but
    // never greets never fails at all once cancelled. The background probe finds out.
    if (suspect) {
      selector_.health_->lock()->record_suspect(index, Clock::now());
      log::info("endpoint_suspect",
                {{"endpoint", lost.label()},
                 {"detail", it->connection->tcp_connected()
                                ? "connected but not ready before another endpoint was"
                                : "no TCP answer before another endpoint was ready"}});
    }
    // Not inside its callback (the winner's is on the stack): it can go now.
    running_.erase(it);
  }

  // Each candidate that did not fail on its own in this race is reported as skipped
  // (CoolingDown), so the client's 451 says why nothing was tried to the end.
  void abandoned() {
    std::set<std::size_t> failed;
    for (const auto& failure : selection_.failures) failed.insert(failure.endpoint_index);
    std::size_t skipped = 0;
    for (std::size_t index : plan_->candidates()) {
      if (failed.count(index)) continue;
      selection_.failures.push_back(
          {index, {FailureReason::CoolingDown, "cooling down after recent failures"}});
      ++skipped;
    }
    log::info("race_abandoned", {{"detail", "every endpoint left is cooling down"},
                                 {"skipped", std::to_string(skipped)}});
    finish(std::nullopt);
  }

  void finish(std::optional<std::size_t> winner) {
    timer_.stop();
    if (winner) {
      auto it = find(*winner);
      if (it->reused)
        selector_.metrics_.pool_reuse(it->connection->endpoint());
      else
        selector_.record_ready(*it->connection);
      // The message's token: taken from the upstream it goes to.
      const std::size_t upstream = selector_.upstream_of(*winner);
      if (reserved_upstream_ == upstream) {
        if (slot_reserved_) {
          selector_.gates_->gates[upstream].connection_closed();
          slot_reserved_ = false;
          selector_.capacity_changed();
        }
        reserved_upstream_.reset();
      } else {
        give_back();
        selector_.gate(*winner).start_message(Clock::now());
      }
      selector_.publish_gate(upstream);
      it->connection->count_message();
      selection_.connection = std::move(it->connection);
      running_.erase(it);
      const auto& candidates = plan_->candidates();
      if (*winner != candidates.front())
        selector_.metrics_.failover(endpoint(candidates.front()), endpoint(*winner));
    }
    give_back();
    auto callback = std::move(callback_);
    callback_ = nullptr;
    if (callback) callback(std::move(selection_));  // the owner defers our deletion
  }

  RacingSelector& selector_;
  Callback callback_;
  const config::Route& route_;  // owned by the selector's configuration, outlives the race
  std::set<std::size_t> exclude_;
  TimePoint deadline_;  // of waiting for the upstreams' limits
  std::vector<std::size_t> candidates_;
  std::vector<std::size_t> limited_;
  TimePoint wake_at_{};
  std::optional<std::size_t> reserved_upstream_;  // its token is this race's
  bool slot_reserved_ = false;                    // and a connection slot there
  std::size_t held_back_ = 0;                     // launches refused by a connection cap
  std::optional<RacePlan> plan_;
  net::Timer timer_;
  std::vector<Running> running_;
  Selection selection_;
};

struct RacingSelector::Probe {
  std::size_t index;
  ProbeKind kind;
  std::unique_ptr<UpstreamConnection> connection;
};

RacingSelector::RacingSelector(net::Loop& loop, std::vector<EndpointRuntimePtr> endpoints,
                               UpstreamTimeouts timeouts, std::string helo_name,
                               RacingOptions options, metrics::Metrics& metrics,
                               std::vector<config::Route> routes)
    : loop_(loop),
      endpoints_(std::move(endpoints)),
      routes_(std::move(routes)),
      default_route_(config::default_route(endpoints_.size())),
      timeouts_(timeouts),
      helo_name_(std::move(helo_name)),
      options_(options),
      metrics_(metrics),
      health_(options.shared_health
                  ? options.shared_health
                  : std::make_shared<SharedHealth>(
                        HealthTable(identities(endpoints_), options.cooldown, options.cooldown_max,
                                    {}, {options.recovery_probe_min, options.recovery_probe_max}),
                        EndpointSizes(identities(endpoints_)))),
      pool_(loop, endpoints_, options.pool_max_per_endpoint, options.pool_idle_timeout, metrics),
      probe_timer_(loop.uv()),
      endpoint_up_timer_(loop.uv()),
      gates_(std::make_shared<Gates>()),
      pauses_(options.shared_pauses ? options.shared_pauses : std::make_shared<SharedPauses>()),
      capacity_timer_(loop.uv()),
      pause_timer_(loop.uv()),
      window_save_timer_(loop.uv()) {
  // One gate per upstream. Without the configuration's list (tests), endpoints sharing a
  // name are one upstream, as the configuration groups them.
  std::map<std::string, std::size_t> by_name;
  for (const auto& runtime : endpoints_) {
    const config::Endpoint& endpoint = runtime->endpoint;
    std::size_t upstream = endpoint.upstream;
    if (options_.upstreams.empty())
      upstream = by_name.emplace(endpoint.name, by_name.size()).first->second;
    endpoint_upstream_.push_back(upstream);
    if (gates_->names.size() <= upstream) {
      gates_->names.resize(upstream + 1);
      gates_->limits.resize(upstream + 1);
    }
    gates_->names[upstream] = endpoint.name;
  }
  for (const config::Upstream& upstream : options_.upstreams)
    if (upstream.index < gates_->limits.size()) gates_->limits[upstream.index] = upstream.limits;
  if (!options_.shared_health) {
    auto shared = health_->lock();
    for (std::size_t index = 0; index < endpoints_.size(); ++index)
      shared.sizes().configured(index, gates_->limits[endpoint_upstream_[index]].max_message_size);
  }
  const auto now = Clock::now();
  for (const config::UpstreamLimits& limits : gates_->limits) {
    GateLimits gate = options_.gate_defaults;
    gate.max_connections = limits.max_connections;
    gate.max_message_rate = limits.max_message_rate;
    gate.max_message_burst = limits.max_message_burst;
    gates_->gates.emplace_back(gate, now);
  }
  const auto minute = RecipientWindow::minute_of(std::chrono::system_clock::now());
  for (std::size_t upstream = 0; upstream < gates_->limits.size(); ++upstream) {
    std::shared_ptr<DailyCount> daily;
    if (gates_->limits[upstream].max_recipients_per_day > 0) {
      daily = std::make_shared<DailyCount>();
      if (!options_.recipient_window_dir.empty())
        daily->window =
            load_recipient_window(options_.recipient_window_dir, gates_->names[upstream], minute);
    }
    gates_->daily.push_back(std::move(daily));
  }
  gates_->on_closed = [this](std::size_t upstream) {
    publish_gate(upstream);
    capacity_changed();
  };
  for (std::size_t upstream = 0; upstream < gates_->gates.size(); ++upstream)
    publish_gate(upstream);
  if (!options_.shared_health)
    health_->lock()->set_refresh_interval(
        std::chrono::duration_cast<HealthTable::Duration>(options_.refresh_interval));
  // A worker loop's selector leaves probing to the main loop's, which shares its table.
  if (!options_.probes) return;
  // With refresh on, the first look is on the next loop turn: the start-up probe (and,
  // after a reload, inherit_health() has run by then, so only new endpoints are due).
  const bool refresh = options_.refresh_interval > config::Duration::zero();
  probe_timer_.start(refresh ? std::chrono::milliseconds(0) : options_.probe_tick,
                     [this]() { probe_due_endpoints(); });
}

RacingSelector::~RacingSelector() {
  save_recipient_windows();
  // Connections handed out may outlive us; their leases must not call back.
  gates_->on_closed = nullptr;
}

std::size_t RacingSelector::upstream_of(std::size_t index) const {
  return endpoint_upstream_.at(index);
}

UpstreamGate& RacingSelector::gate(std::size_t index) { return gates_->gates[upstream_of(index)]; }

const UpstreamGate& RacingSelector::gate_of(std::size_t index) const {
  return gates_->gates[upstream_of(index)];
}

const config::UpstreamLimits* RacingSelector::limits_of(std::size_t index) const {
  return &gates_->limits[upstream_of(index)];
}

bool RacingSelector::idle_connection(std::size_t upstream) const {
  for (std::size_t index = 0; index < endpoints_.size(); ++index)
    if (endpoint_upstream_[index] == upstream && pool_.idle(index) > 0) return true;
  return false;
}

bool RacingSelector::lease_connection(UpstreamConnection& connection) {
  const std::size_t upstream = upstream_of(connection.endpoint().index);
  UpstreamGate& gate = gates_->gates[upstream];
  if (!gate.may_connect()) return false;
  gate.connection_opened();
  connection.hold(
      std::shared_ptr<void>(new ConnectionLease{gates_, &gate, &gates_->on_closed, upstream},
                            [](void* lease) { delete static_cast<ConnectionLease*>(lease); }));
  publish_gate(upstream);
  return true;
}

void RacingSelector::publish_gate(std::size_t upstream) {
  const UpstreamGate& gate = gates_->gates[upstream];
  const auto now = Clock::now();
  std::optional<double> tokens;
  if (gate.limits().max_message_rate > 0) tokens = gate.tokens(now);
  metrics_.upstream_gate(gates_->names[upstream], gate.paused(now), tokens, gate.connections());
}

// On a later turn: this runs inside destructors and connection callbacks.
void RacingSelector::capacity_changed() {
  if (retired_) return;
  capacity_timer_.start(std::chrono::milliseconds(0), [this]() {
    auto waiting = waiting_;
    for (Race* race : waiting)
      if (std::find(waiting_.begin(), waiting_.end(), race) != waiting_.end())
        race->limits_changed();
    auto callback = on_capacity_;
    if (callback) callback();
  });
}

void RacingSelector::set_on_capacity(std::function<void()> callback) {
  on_capacity_ = std::move(callback);
}

std::optional<UpstreamGate::TimePoint> RacingSelector::upstream_wait(std::size_t upstream,
                                                                     UpstreamGate::TimePoint now,
                                                                     bool idle) const {
  std::optional<UpstreamGate::TimePoint> room_at;
  const std::uint64_t limit = gates_->limits[upstream].max_recipients_per_day;
  if (const auto& daily = gates_->daily[upstream]) {
    // The window counts in wall-clock minutes; the gate waits on the steady clock.
    const auto wall = std::chrono::system_clock::now();
    const auto minute = RecipientWindow::minute_of(wall);
    const auto room = daily->window.room_at(minute, limit);
    if (room > minute)
      room_at = now + std::chrono::ceil<std::chrono::milliseconds>(
                          std::chrono::system_clock::time_point(std::chrono::minutes(room)) - wall);
  }
  return gates_->gates[upstream].message_wait(now, idle, room_at);
}

std::optional<UpstreamGate::TimePoint> RacingSelector::message_wait() const {
  const auto now = Clock::now();
  std::optional<UpstreamGate::TimePoint> earliest;
  for (std::size_t upstream = 0; upstream < gates_->gates.size(); ++upstream) {
    auto wait = upstream_wait(upstream, now, idle_connection(upstream));
    if (!wait) return std::nullopt;
    if (!earliest || *wait < *earliest) earliest = wait;
  }
  return earliest;
}

void RacingSelector::record_throttle(std::size_t index, PauseKind kind, const smtp::Reply& reply) {
  const auto now = Clock::now();
  const std::size_t upstream = upstream_of(index);
  UpstreamGate& gate = gates_->gates[upstream];
  const auto before = gate.paused_until();
  gate.throttled(now, kind);
  if (gate.paused_until() == before) return;  // a message in flight, answered by this pause
  metrics_.upstream_throttled(gates_->names[upstream], to_string(kind));
  const auto pause =
      std::chrono::duration_cast<std::chrono::milliseconds>(gate.paused_until() - now);
  log::warn("upstream_paused", {{"upstream", gates_->names[upstream]},
                                {"kind", to_string(kind)},
                                {"pause_ms", std::to_string(pause.count())},
                                {"reply", reply.summary()}});
  publish_gate(upstream);
  share_pause(upstream);
  arm_pause_timer();
}

void RacingSelector::share_pause(std::size_t upstream) {
  const UpstreamGate& gate = gates_->gates[upstream];
  if (const auto kind = gate.pause_kind())
    pauses_->publish(gates_->names[upstream], gate.paused_until(), *kind);
}

void RacingSelector::adopt_shared_pauses() {
  const std::uint64_t version = pauses_->version();
  if (version == pauses_seen_) return;
  pauses_seen_ = version;
  bool adopted = false;
  for (std::size_t upstream = 0; upstream < gates_->gates.size(); ++upstream) {
    const auto pause = pauses_->find(gates_->names[upstream]);
    UpstreamGate& gate = gates_->gates[upstream];
    if (!pause || pause->until <= gate.paused_until()) continue;
    gate.adopt_pause(pause->until, pause->kind);
    publish_gate(upstream);
    adopted = true;
  }
  if (adopted) arm_pause_timer();
}

// At the end of the earliest pause: the gauges, and whoever waits without a time of its own
// (the spool's own timer already knows the time; a waiting race too).
void RacingSelector::arm_pause_timer() {
  const auto now = Clock::now();
  std::optional<Clock::time_point> next;
  for (const UpstreamGate& gate : gates_->gates)
    if (gate.paused(now) && (!next || gate.paused_until() < *next)) next = gate.paused_until();
  if (!next) return pause_timer_.stop();
  pause_timer_.start(
      std::chrono::ceil<std::chrono::milliseconds>(*next - now) + std::chrono::milliseconds(1),
      [this]() {
        for (std::size_t upstream = 0; upstream < gates_->gates.size(); ++upstream)
          publish_gate(upstream);
        capacity_changed();
        arm_pause_timer();
      });
}

void RacingSelector::record_refusal(std::size_t index) {
  const auto now = Clock::now();
  const std::size_t upstream = upstream_of(index);
  UpstreamGate& gate = gates_->gates[upstream];
  if (!gate.refused(now)) return;
  metrics_.upstream_throttled(gates_->names[upstream], to_string(PauseKind::Refusals));
  const auto pause =
      std::chrono::duration_cast<std::chrono::milliseconds>(gate.paused_until() - now);
  log::warn("upstream_paused",
            {{"upstream", gates_->names[upstream]},
             {"kind", to_string(PauseKind::Refusals)},
             {"pause_ms", std::to_string(pause.count())},
             {"refusals", std::to_string(gate.limits().max_consecutive_refusals)}});
  publish_gate(upstream);
  share_pause(upstream);
  arm_pause_timer();
}

void RacingSelector::record_delivered(std::size_t index, std::size_t recipients) {
  gate(index).delivered();
  const auto& daily = gates_->daily[upstream_of(index)];
  if (!daily || recipients == 0) return;
  daily->window.add(RecipientWindow::minute_of(std::chrono::system_clock::now()), recipients);
  daily->dirty = true;
  // Written at most once per interval: a message delivered meanwhile rides along with the
  // next write (the fsyncs of one write per message would cost more than the messages).
  if (options_.recipient_window_dir.empty() || window_save_due_) return;
  window_save_due_ = true;
  window_save_timer_.start(options_.recipient_window_save_interval, [this]() {
    window_save_due_ = false;
    save_recipient_windows();
  });
}

void RacingSelector::save_recipient_windows() {
  if (options_.recipient_window_dir.empty()) return;
  const auto minute = RecipientWindow::minute_of(std::chrono::system_clock::now());
  for (std::size_t upstream = 0; upstream < gates_->daily.size(); ++upstream) {
    const auto& daily = gates_->daily[upstream];
    if (!daily || !daily->dirty) continue;
    // Off the loop (its fsyncs wait for the disk); a failed write is logged there and the
    // next change writes the whole window again.
    RecipientWindowWriter::shared().save(options_.recipient_window_dir, gates_->names[upstream],
                                         daily->window, minute);
    daily->dirty = false;
  }
}

std::unique_ptr<SelectionAttempt> RacingSelector::select(const config::Route& route,
                                                         const std::set<std::size_t>& exclude,
                                                         Callback callback) {
  return std::make_unique<Race>(*this, route, exclude, std::move(callback));
}

const config::Route& RacingSelector::route(std::string_view name) const {
  const config::Route* found = config::find_route(routes_, name);
  return found != nullptr ? *found : default_route_;
}

const config::Route& RacingSelector::route_for_sender(std::string_view sender) const {
  const config::Route* found = config::choose_route(routes_, sender);
  return found != nullptr ? *found : default_route_;
}

bool RacingSelector::all_cooling_down() const {
  return health_->lock()->all_unavailable(Clock::now());
}

void RacingSelector::set_recovery_probing(bool on) {
  if (on == recovery_probing_) return;
  recovery_probing_ = on;
  log::info("recovery_probing", {{"enabled", on ? "true" : "false"}});
}

void RacingSelector::set_on_endpoint_up(std::function<void(std::size_t index)> callback) {
  on_endpoint_up_ = std::move(callback);
}

void RacingSelector::release(std::unique_ptr<UpstreamConnection> connection) {
  if (!connection) return;
  const std::size_t per_connection =
      gates_->limits[upstream_of(connection->endpoint().index)].max_messages_per_connection;
  const bool spent = per_connection > 0 && connection->messages() >= per_connection;
  if (!retired_ && !spent) {
    pool_.give(std::move(connection));
    // An idle connection is room for a message that waits for a capped upstream.
    if (!waiting_.empty() || on_capacity_) capacity_changed();
    return;
  }
  if (spent)
    log::info("connection_spent", {{"endpoint", connection->endpoint().label()},
                                   {"messages", std::to_string(connection->messages())}});
  // A retired selector keeps nothing: its endpoints may be gone from the configuration.
  connection->quit();
  loop_.defer_delete(std::move(connection));
}

void RacingSelector::inherit_health(const RacingSelector& previous) {
  // An endpoint whose credentials, pinned addresses or TLS verification changed starts
  // with a clean slate: the change may be the fix for what made it fail.
  std::set<EndpointIdentity> fresh;
  for (const auto& runtime : endpoints_)
    for (const auto& old : previous.endpoints_)
      if (identity_of(old->endpoint) == identity_of(runtime->endpoint) &&
          !same_connection_settings(*old, *runtime))
        fresh.insert(identity_of(runtime->endpoint));
  // A shared table is the main loop's selector's, which inherited it already; the previous
  // table's snapshot is taken first (it may be the same lock's, never held twice).
  if (!options_.shared_health && health_ != previous.health_) {
    const HealthTable before = previous.health_->snapshot();
    const EndpointSizes sizes_before = previous.health_->sizes_snapshot();
    auto shared = health_->lock();
    shared->inherit(before, fresh);
    shared.sizes().inherit(sizes_before);  // a server's SIZE does not depend on how we log in
  }
  // The recipients already sent today stay counted: the same window, by upstream name.
  for (std::size_t upstream = 0; upstream < gates_->daily.size(); ++upstream) {
    if (!gates_->daily[upstream]) continue;
    for (std::size_t old = 0; old < previous.gates_->daily.size(); ++old)
      if (previous.gates_->daily[old] && previous.gates_->names[old] == gates_->names[upstream])
        gates_->daily[upstream] = previous.gates_->daily[old];
  }
}

std::unique_ptr<UpstreamConnection> RacingSelector::new_connection(std::size_t index) {
  metrics_.connect_attempt(endpoints_[index]->endpoint);
  auto connection =
      std::make_unique<UpstreamConnection>(loop_, endpoints_[index], timeouts_, helo_name_);
  lease_connection(*connection);  // the caller checked may_connect()
  return connection;
}

void RacingSelector::record_ready(const UpstreamConnection& connection, bool probe) {
  std::size_t index = connection.endpoint().index;
  bool came_back = false;
  {
    auto health = health_->lock();
    health.sizes().learned(index, connection.capabilities().size_limit);
    came_back = health->entry(index).consecutive_failures > 0;
    health->record_success(index);
    health->checked(index, Clock::now());
  }
  if (came_back) endpoint_came_back(index);
  if (probe)
    metrics_.probe_result(connection.endpoint(), std::nullopt);
  else
    metrics_.connect_success(connection.endpoint(),
                             std::chrono::duration<double>(connection.ready_after()).count());
}

void RacingSelector::record_failure(std::size_t index, const AttemptFailure& failure, bool probe) {
  if (failure.reason == FailureReason::LocalResources) {
    // This process is out of descriptors or memory: blaming the endpoint would cool a
    // healthy upstream down and raise a false alert.
    metrics_.local_error("connect");
    log::error("local_resources",
               {{"endpoint", endpoints_[index]->endpoint.label()}, {"detail", failure.detail}});
    return;
  }
  // "432 4.3.2 concurrent connection limit exceeded" as the greeting (Microsoft 365): the
  // account says "not now", the port is fine. Pause the whole upstream as a throttle at
  // MAIL would, and do not cool this port down (which would send the next message to the
  // same account on another port, into the same limit). Only the greeting: later in the
  // handshake "454 4.7.0" means TLS (RFC 3207) or AUTH (RFC 4954) is unavailable.
  if (failure.refusal && failure.reason == FailureReason::GreetingRejected) {
    if (const auto kind = throttle_kind(*failure.refusal, *limits_of(index))) {
      return record_throttle(index, *kind, *failure.refusal);
    }
  }
  cool_down(index, failure, [this, probe](const config::Endpoint& endpoint, FailureReason reason) {
    if (probe)
      metrics_.probe_result(endpoint, reason);
    else
      metrics_.connect_failure(endpoint, reason);
  });
}

void RacingSelector::record_transaction_failure(std::size_t index, const AttemptFailure& failure) {
  cool_down(index, failure, [this](const config::Endpoint& endpoint, FailureReason reason) {
    metrics_.transaction_failure(endpoint, reason);
  });
}

// Both kinds of failure cool the endpoint down the same way; they are counted apart.
template <typename Count>
void RacingSelector::cool_down(std::size_t index, const AttemptFailure& failure, Count count) {
  auto now = Clock::now();
  HealthTable::TimePoint cooldown_until;
  {
    auto health = health_->lock();
    health->record_failure(index, failure.reason, now);
    health->checked(index, now);
    cooldown_until = health->entry(index).cooldown_until;
  }
  const auto& endpoint = endpoints_[index]->endpoint;
  count(endpoint, failure.reason);
  auto cooldown = std::chrono::duration_cast<std::chrono::milliseconds>(cooldown_until - now);
  log::warn("upstream_failed", {{"endpoint", endpoint.label()},
                                {"reason", to_string(failure.reason)},
                                {"detail", failure.detail},
                                {"cooldown_ms", std::to_string(cooldown.count())}});
}

// Reported on a later loop turn: this runs inside a race's or probe's connection callback,
// and the listener (the spool) may well start selections of its own.
void RacingSelector::endpoint_came_back(std::size_t index) {
  if (retired_) return;
  if (std::find(endpoints_up_.begin(), endpoints_up_.end(), index) == endpoints_up_.end())
    endpoints_up_.push_back(index);
  endpoint_up_timer_.start(std::chrono::milliseconds(0), [this]() { report_endpoints_up(); });
}

void RacingSelector::report_endpoints_up() {
  auto indices = std::move(endpoints_up_);
  endpoints_up_.clear();
  for (std::size_t index : indices) {
    auto callback = on_endpoint_up_;  // it may replace itself
    if (callback && !retired_) callback(index);
  }
}

void RacingSelector::probe_due_endpoints() {
  if (retired_) return;
  const auto now = Clock::now();
  // Fail-back first: such a probe also keeps messages off the endpoint until it answers.
  // The lists are taken first: start_probe locks the table again.
  const auto fail_back = health_->lock()->due_for_probe(now, recovery_probing_);
  for (std::size_t index : fail_back) start_probe(index, ProbeKind::FailBack);
  const auto refresh = health_->lock()->due_for_refresh(now);
  for (std::size_t index : refresh) start_probe(index, ProbeKind::Refresh);
  probe_timer_.start(options_.probe_tick, [this]() { probe_due_endpoints(); });
}

// A probe is a connect (TCP, TLS, greeting, EHLO, AUTH) like a message's, counted apart.
void RacingSelector::start_probe(std::size_t index, ProbeKind kind) {
  // A probe is a connection like any other: it needs a free slot of max_connections.
  if (!gate(index).may_connect()) return;
  if (kind == ProbeKind::FailBack)
    health_->lock()->set_probing(index, true);
  else
    health_->lock()->set_refreshing(index, true);
  auto probe = std::make_unique<Probe>(
      Probe{index, kind,
            std::make_unique<UpstreamConnection>(loop_, endpoints_[index], timeouts_, helo_name_)});
  UpstreamConnection* connection = probe->connection.get();
  lease_connection(*connection);
  probes_.push_back(std::move(probe));
  log::info("probe_started", {{"endpoint", connection->endpoint().label()},
                              {"kind", kind == ProbeKind::FailBack ? "fail_back" : "refresh"}});
  connection->connect([this, connection](std::optional<AttemptFailure> failure) {
    probe_finished(connection, failure);
  });
}

void RacingSelector::probe_finished(UpstreamConnection* connection,
                                    const std::optional<AttemptFailure>& failure) {
  auto it = std::find_if(probes_.begin(), probes_.end(),
                         [connection](const auto& p) { return p->connection.get() == connection; });
  if (it == probes_.end()) return;
  const std::size_t index = (*it)->index;
  const ProbeKind kind = (*it)->kind;
  bool was_down = false;
  {
    auto health = health_->lock();
    was_down = health->entry(index).consecutive_failures > 0;
    if (kind == ProbeKind::FailBack)
      health->set_probing(index, false);
    else
      health->set_refreshing(index, false);
  }
  auto finished = std::move((*it)->connection);
  probes_.erase(it);
  if (failure) {
    record_failure(index, *failure, /*probe=*/true);
    return loop_.defer_delete(std::move(finished));  // inside its own callback
  }
  record_ready(*finished, /*probe=*/true);
  if (was_down) log::info("endpoint_recovered", {{"endpoint", finished->endpoint().label()}});
  // Warm fail-back: the next message finds a ready connection. A refresh of an endpoint
  // that already has one idle adds nothing but a connection to expire, so it says QUIT.
  if (kind == ProbeKind::Refresh && pool_.idle(index) > 0) {
    finished->quit();
    return loop_.defer_delete(std::move(finished));
  }
  release(std::move(finished));
}

void RacingSelector::retire() {
  retired_ = true;
  save_recipient_windows();
  window_save_timer_.stop();
  window_save_due_ = false;
  capacity_timer_.stop();
  pause_timer_.stop();
  probe_timer_.stop();
  endpoint_up_timer_.stop();
  endpoints_up_.clear();
  probes_.clear();
  pool_.clear();
}

}  // namespace portrelay::relay
