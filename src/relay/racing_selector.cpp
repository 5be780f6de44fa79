#include "portrelay/relay/racing_selector.hpp"

#include <algorithm>
#include <set>

#include "portrelay/base/log.hpp"
#include "portrelay/relay/race_plan.hpp"

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
  return options;
}

// The glue around a RacePlan: carries out its actions with connections (pooled ones
// revalidated first), one timer, metrics and the health table.
class RacingSelector::Race : public SelectionAttempt {
 public:
  Race(RacingSelector& selector, const config::Route& route, const std::set<std::size_t>& exclude,
       Callback callback)
      : selector_(selector),
        callback_(std::move(callback)),
        plan_(candidates(selector, route, exclude), selector.options_.stagger,
              selector.options_.max_parallel, abandon_after(selector, route, exclude)),
        timer_(selector.loop_.uv()) {
    // select() never calls back from inside itself: the race starts on the next turn.
    timer_.start(std::chrono::milliseconds(0), [this]() { run(plan_.start(Clock::now())); });
  }

  ~Race() override {
    for (auto& attempt : running_)
      selector_.metrics_.connect_cancelled(attempt.connection->endpoint());
  }

 private:
  struct Running {
    std::size_t index;
    std::unique_ptr<UpstreamConnection> connection;
    bool reused;  // taken from the pool
  };

  static std::vector<std::size_t> candidates(const RacingSelector& selector,
                                             const config::Route& route,
                                             const std::set<std::size_t>& exclude) {
    std::vector<std::size_t> out;
    for (std::size_t index : selector.health_.preference_order(Clock::now(), route.endpoints))
      if (!exclude.count(index)) out.push_back(index);
    return out;
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
    if (!selector.health_.all_unavailable(Clock::now(), off_route)) return std::nullopt;
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
                       [this]() { run(plan_.stagger_elapsed(Clock::now())); });
          break;
        case Kind::Won:
          return finish(action.endpoint);
        case Kind::Lost:
          return finish(std::nullopt);
        case Kind::Abandoned:
          return abandoned();
      }
    }
  }

  // An attempt on one endpoint: a pooled connection if there is one (checked with RSET),
  // otherwise a fresh connect.
  void launch(std::size_t index) {
    auto pooled = selector_.pool_.take(index);
    bool reused = pooled != nullptr;
    auto connection = reused ? std::move(pooled) : selector_.new_connection(index);
    UpstreamConnection* raw = connection.get();
    running_.push_back({index, std::move(connection), reused});
    auto on_done = [this, index](std::optional<AttemptFailure> failure) {
      on_result(index, failure);
    };
    if (reused) {
      raw->mark_reused();
      raw->revalidate(selector_.timeouts_.pool_check, on_done);
    } else {
      raw->connect(on_done);
    }
  }

  void on_result(std::size_t index, const std::optional<AttemptFailure>& failure) {
    auto it = find(index);
    if (it == running_.end()) return;
    if (!failure) return run(plan_.ready(index, Clock::now()));
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
    run(plan_.failed(index, reused, Clock::now()));
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
      selector_.health_.record_suspect(index, Clock::now());
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
    for (std::size_t index : plan_.candidates()) {
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
      selection_.connection = std::move(it->connection);
      running_.erase(it);
      const auto& candidates = plan_.candidates();
      if (*winner != candidates.front())
        selector_.metrics_.failover(endpoint(candidates.front()), endpoint(*winner));
    }
    auto callback = std::move(callback_);
    callback_ = nullptr;
    if (callback) callback(std::move(selection_));  // the owner defers our deletion
  }

  RacingSelector& selector_;
  Callback callback_;
  RacePlan plan_;
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
      health_(identities(endpoints_), options.cooldown, options.cooldown_max, {},
              {options.recovery_probe_min, options.recovery_probe_max}),
      sizes_(identities(endpoints_)),
      pool_(loop, endpoints_, options.pool_max_per_endpoint, options.pool_idle_timeout, metrics),
      probe_timer_(loop.uv()),
      endpoint_up_timer_(loop.uv()) {
  health_.set_refresh_interval(
      std::chrono::duration_cast<HealthTable::Duration>(options_.refresh_interval));
  // With refresh on, the first look is on the next loop turn: the start-up probe (and,
  // after a reload, inherit_health() has run by then, so only new endpoints are due).
  const bool refresh = options_.refresh_interval > config::Duration::zero();
  probe_timer_.start(refresh ? std::chrono::milliseconds(0) : options_.probe_tick,
                     [this]() { probe_due_endpoints(); });
}

RacingSelector::~RacingSelector() = default;

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

bool RacingSelector::all_cooling_down() const { return health_.all_unavailable(Clock::now()); }

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
  if (!retired_) return pool_.give(std::move(connection));
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
  health_.inherit(previous.health_, fresh);
  sizes_.inherit(previous.sizes_);  // a server's SIZE does not depend on how we log in
}

std::unique_ptr<UpstreamConnection> RacingSelector::new_connection(std::size_t index) {
  metrics_.connect_attempt(endpoints_[index]->endpoint);
  return std::make_unique<UpstreamConnection>(loop_, endpoints_[index], timeouts_, helo_name_);
}

void RacingSelector::record_ready(const UpstreamConnection& connection, bool probe) {
  std::size_t index = connection.endpoint().index;
  sizes_.learned(index, connection.capabilities().size_limit);
  if (health_.entry(index).consecutive_failures > 0) endpoint_came_back(index);
  health_.record_success(index);
  health_.checked(index, Clock::now());
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
  health_.record_failure(index, failure.reason, now);
  health_.checked(index, now);
  const auto& endpoint = endpoints_[index]->endpoint;
  count(endpoint, failure.reason);
  auto cooldown = std::chrono::duration_cast<std::chrono::milliseconds>(
      health_.entry(index).cooldown_until - now);
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
  for (std::size_t index : health_.due_for_probe(now, recovery_probing_))
    start_probe(index, ProbeKind::FailBack);
  for (std::size_t index : health_.due_for_refresh(now)) start_probe(index, ProbeKind::Refresh);
  probe_timer_.start(options_.probe_tick, [this]() { probe_due_endpoints(); });
}

// A probe is a connect (TCP, TLS, greeting, EHLO, AUTH) like a message's, counted apart.
void RacingSelector::start_probe(std::size_t index, ProbeKind kind) {
  if (kind == ProbeKind::FailBack)
    health_.set_probing(index, true);
  else
    health_.set_refreshing(index, true);
  auto probe = std::make_unique<Probe>(
      Probe{index, kind,
            std::make_unique<UpstreamConnection>(loop_, endpoints_[index], timeouts_, helo_name_)});
  UpstreamConnection* connection = probe->connection.get();
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
  const bool was_down = health_.entry(index).consecutive_failures > 0;
  const ProbeKind kind = (*it)->kind;
  if (kind == ProbeKind::FailBack)
    health_.set_probing(index, false);
  else
    health_.set_refreshing(index, false);
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
  probe_timer_.stop();
  endpoint_up_timer_.stop();
  endpoints_up_.clear();
  probes_.clear();
  pool_.clear();
}

}  // namespace portrelay::relay
