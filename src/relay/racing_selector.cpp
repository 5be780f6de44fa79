#include "portrelay/relay/racing_selector.hpp"

#include <algorithm>

#include "portrelay/base/log.hpp"

namespace portrelay::relay {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

RacingOptions RacingOptions::from(const config::RelayConfig& relay) {
  RacingOptions options;
  options.stagger = relay.stagger;
  options.max_parallel = relay.max_parallel;
  options.cooldown = relay.cooldown;
  options.cooldown_max = relay.cooldown_max;
  options.pool_idle_timeout = relay.pool_idle_timeout;
  options.pool_max_per_endpoint = relay.pool_max_per_endpoint;
  return options;
}

class RacingSelector::Race : public SelectionAttempt {
 public:
  Race(RacingSelector& selector, const std::set<std::size_t>& exclude, Callback callback)
      : selector_(selector),
        callback_(std::move(callback)),
        stagger_(selector.loop_.uv()),
        kickoff_(selector.loop_.uv()) {
    for (std::size_t index : selector.health_.preference_order(Clock::now()))
      if (!exclude.count(index)) candidates_.push_back(index);
    // select() never calls back from inside itself.
    kickoff_.start(std::chrono::milliseconds(0), [this]() { launch_next(); });
  }

  ~Race() override {
    for (auto& attempt : running_)
      selector_.metrics_.connect_cancelled(attempt.connection->endpoint());
  }

 private:
  struct Running {
    std::size_t index;
    std::unique_ptr<UpstreamConnection> connection;
    Clock::time_point started;
    bool reused;  // taken from the pool
  };

  const config::Endpoint& endpoint(std::size_t index) const {
    return selector_.endpoints_[index]->endpoint;
  }

  void launch_next() {
    if (finished_) return;
    if (next_ >= candidates_.size()) {
      if (running_.empty()) finish();
      return;
    }
    if (running_.size() >= selector_.options_.max_parallel) return;
    std::size_t index = candidates_[next_++];
    if (next_ < candidates_.size())
      stagger_.start(selector_.options_.stagger, [this]() { launch_next(); });
    launch(index);
  }

  // An attempt on one endpoint: a pooled connection if there is one (checked with RSET),
  // otherwise a fresh connect.
  void launch(std::size_t index) {
    auto pooled = selector_.pool_.take(index);
    bool reused = pooled != nullptr;
    auto connection = reused ? std::move(pooled) : selector_.new_connection(index);
    UpstreamConnection* raw = connection.get();
    running_.push_back({index, std::move(connection), Clock::now(), reused});
    auto on_done = [this, raw](std::optional<AttemptFailure> failure) { on_result(raw, failure); };
    if (reused) {
      raw->mark_reused();
      raw->revalidate(selector_.timeouts_.pool_check, on_done);
    } else {
      raw->connect(on_done);
    }
  }

  void on_result(UpstreamConnection* connection, const std::optional<AttemptFailure>& failure) {
    auto it = std::find_if(running_.begin(), running_.end(), [connection](const Running& r) {
      return r.connection.get() == connection;
    });
    if (it == running_.end()) return;
    std::size_t index = it->index;
    bool reused = it->reused;
    if (!failure) {
      if (reused)
        selector_.metrics_.pool_reuse(connection->endpoint());
      else
        selector_.record_ready(*connection);
      selection_.connection = std::move(it->connection);
      running_.erase(it);
      cancel_losers();
      return finish();
    }
    selector_.loop_.defer_delete(std::move(it->connection));  // inside its own callback
    running_.erase(it);
    if (reused) {
      // Died while idle in the pool: not the endpoint's fault. Try again on it.
      log::info("pooled_connection_dead",
                {{"endpoint", endpoint(index).label()}, {"detail", failure->detail}});
      return launch(index);
    }
    selector_.record_failure(index, *failure);
    selection_.failures.push_back({index, *failure});
    launch_next();  // a failure does not wait for the stagger
  }

  void cancel_losers() {
    auto now = Clock::now();
    for (auto& attempt : running_) {
      const auto& lost = attempt.connection->endpoint();
      selector_.metrics_.connect_cancelled(lost);
      // An endpoint that was not ready a whole stagger after it started, while another
      // one was, is remembered as suspect so the next messages do not wait on it again:
      // a port that drops SYNs never fails before the winner appears, and one that
      // accepts TCP but never greets (a tarpit, an intercepting proxy) never fails at all
      // once cancelled. The background probe finds out whether it is really healthy.
      if (now - attempt.started >= selector_.options_.stagger) {
        selector_.health_.record_suspect(attempt.index, now);
        log::info("endpoint_suspect",
                  {{"endpoint", lost.label()},
                   {"detail", attempt.connection->tcp_connected()
                                  ? "connected but not ready before another endpoint was"
                                  : "no TCP answer before another endpoint was ready"}});
      }
    }
    running_.clear();
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    stagger_.stop();
    if (selection_.connection && !candidates_.empty() &&
        selection_.connection->endpoint().index != candidates_.front())
      selector_.metrics_.failover(endpoint(candidates_.front()), selection_.connection->endpoint());
    auto callback = std::move(callback_);
    callback_ = nullptr;
    if (callback) callback(std::move(selection_));  // may destroy this Race
  }

  RacingSelector& selector_;
  Callback callback_;
  net::Timer stagger_;
  net::Timer kickoff_;
  std::vector<std::size_t> candidates_;
  std::size_t next_ = 0;
  std::vector<Running> running_;
  Selection selection_;
  bool finished_ = false;
};

struct RacingSelector::Probe {
  std::size_t index;
  std::unique_ptr<UpstreamConnection> connection;
};

RacingSelector::RacingSelector(net::Loop& loop, std::vector<EndpointRuntimePtr> endpoints,
                               UpstreamTimeouts timeouts, std::string helo_name,
                               RacingOptions options, metrics::Metrics& metrics)
    : loop_(loop),
      endpoints_(std::move(endpoints)),
      timeouts_(timeouts),
      helo_name_(std::move(helo_name)),
      options_(options),
      metrics_(metrics),
      health_(endpoints_.size(), options.cooldown, options.cooldown_max),
      pool_(loop, endpoints_.size(), options.pool_max_per_endpoint, options.pool_idle_timeout,
            metrics),
      probe_timer_(loop.uv()) {
  probe_timer_.start(options_.probe_interval, [this]() { probe_due_endpoints(); });
}

RacingSelector::~RacingSelector() = default;

std::unique_ptr<SelectionAttempt> RacingSelector::select(const std::set<std::size_t>& exclude,
                                                         Callback callback) {
  return std::make_unique<Race>(*this, exclude, std::move(callback));
}

void RacingSelector::release(std::unique_ptr<UpstreamConnection> connection) {
  pool_.give(std::move(connection));
}

std::unique_ptr<UpstreamConnection> RacingSelector::new_connection(std::size_t index) {
  metrics_.connect_attempt(endpoints_[index]->endpoint);
  return std::make_unique<UpstreamConnection>(loop_, endpoints_[index], timeouts_,
                                              helo_name_);
}

void RacingSelector::record_ready(const UpstreamConnection& connection) {
  health_.record_success(connection.endpoint().index);
  metrics_.connect_success(connection.endpoint(),
                           std::chrono::duration<double>(connection.ready_after()).count());
}

void RacingSelector::record_failure(std::size_t index, const AttemptFailure& failure) {
  auto now = Clock::now();
  health_.record_failure(index, failure.reason, now);
  const auto& endpoint = endpoints_[index]->endpoint;
  metrics_.connect_failure(endpoint, failure.reason);
  auto cooldown = std::chrono::duration_cast<std::chrono::milliseconds>(
      health_.entry(index).cooldown_until - now);
  log::warn("upstream_failed", {{"endpoint", endpoint.label()},
                                {"reason", to_string(failure.reason)},
                                {"detail", failure.detail},
                                {"cooldown_ms", std::to_string(cooldown.count())}});
}

void RacingSelector::record_transaction_failure(std::size_t index, const AttemptFailure& failure) {
  auto now = Clock::now();
  health_.record_failure(index, failure.reason, now);
  const auto& endpoint = endpoints_[index]->endpoint;
  metrics_.transaction_failure(endpoint, failure.reason);
  auto cooldown = std::chrono::duration_cast<std::chrono::milliseconds>(
      health_.entry(index).cooldown_until - now);
  log::warn("upstream_failed", {{"endpoint", endpoint.label()},
                                {"reason", to_string(failure.reason)},
                                {"detail", failure.detail},
                                {"cooldown_ms", std::to_string(cooldown.count())}});
}

void RacingSelector::probe_due_endpoints() {
  for (std::size_t index : health_.due_for_probe(Clock::now())) {
    health_.set_probing(index, true);
    auto probe = std::make_unique<Probe>(Probe{index, new_connection(index)});
    UpstreamConnection* connection = probe->connection.get();
    probes_.push_back(std::move(probe));
    log::info("probe_started", {{"endpoint", connection->endpoint().label()}});
    connection->connect([this, connection, index](std::optional<AttemptFailure> failure) {
      health_.set_probing(index, false);
      auto it = std::find_if(probes_.begin(), probes_.end(), [connection](const auto& p) {
        return p->connection.get() == connection;
      });
      if (it == probes_.end()) return;
      auto finished = std::move(it->get()->connection);
      probes_.erase(it);
      if (failure) {
        record_failure(index, *failure);
        return loop_.defer_delete(std::move(finished));  // inside its own callback
      }
      record_ready(*finished);
      log::info("endpoint_recovered", {{"endpoint", finished->endpoint().label()}});
      pool_.give(std::move(finished));  // fail-back, warm
    });
  }
  probe_timer_.start(options_.probe_interval, [this]() { probe_due_endpoints(); });
}

void RacingSelector::shutdown() {
  probe_timer_.stop();
  probes_.clear();
  pool_.clear();
}

}  // namespace portrelay::relay
