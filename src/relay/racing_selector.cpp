#include "portrelay/relay/racing_selector.hpp"

#include <algorithm>

#include "portrelay/log.hpp"

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
        stagger_(selector.loop_),
        kickoff_(selector.loop_),
        check_timer_(selector.loop_) {
    for (std::size_t index : selector.health_.preference_order(Clock::now()))
      if (!exclude.count(index)) candidates_.push_back(index);
    // select() never calls back from inside itself.
    kickoff_.start(std::chrono::milliseconds(0), [this]() { try_pool(); });
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
  };

  const config::Endpoint& endpoint(std::size_t index) const {
    return selector_.endpoints_[index].endpoint;
  }

  void try_pool() {
    if (candidates_.empty()) return finish();
    auto pooled = selector_.pool_.take(candidates_.front());
    if (!pooled) return launch_next();
    checking_ = std::move(pooled);
    // A peer that vanished without a FIN (NAT state dropped, host rebooted) never answers:
    // a live connection answers RSET within a round trip, so do not wait command_timeout
    // (minutes) for it; connect_timeout is what a fresh connection would be allowed.
    check_timer_.start(selector_.timeouts_.connect,
                       [this]() { drop_checked("no reply to RSET within connect_timeout"); });
    checking_->command("RSET", [this](const UpstreamResponse& response) {
      check_timer_.stop();
      if (!response.connection_failed() && response.reply->positive()) {
        selector_.metrics_.pool_reuse(checking_->endpoint());
        selection_.connection = std::move(checking_);
        return finish();
      }
      drop_checked(response.connection_failed() ? response.failure.detail
                                                : response.reply->summary());
    });
  }

  // The pooled connection died while idle: not the endpoint's fault. Try the next pooled
  // one, or connect. May run inside the connection's own callback, so it is freed later.
  void drop_checked(const std::string& detail) {
    log::info("pooled_connection_dead",
              {{"endpoint", checking_->endpoint().label()}, {"detail", detail}});
    discarded_ = std::move(checking_);
    kickoff_.start(std::chrono::milliseconds(0), [this]() {
      discarded_.reset();
      try_pool();
    });
  }

  void launch_next() {
    if (finished_) return;
    if (next_ >= candidates_.size()) {
      if (running_.empty()) finish();
      return;
    }
    if (running_.size() >= selector_.options_.max_parallel) return;
    std::size_t index = candidates_[next_++];
    running_.push_back({index, selector_.new_connection(index), Clock::now()});
    UpstreamConnection* connection = running_.back().connection.get();
    if (next_ < candidates_.size())
      stagger_.start(selector_.options_.stagger, [this]() { launch_next(); });
    connection->connect([this, connection](std::optional<AttemptFailure> failure) {
      on_result(connection, failure);
    });
  }

  void on_result(UpstreamConnection* connection, const std::optional<AttemptFailure>& failure) {
    auto it = std::find_if(running_.begin(), running_.end(), [connection](const Running& r) {
      return r.connection.get() == connection;
    });
    if (it == running_.end()) return;
    std::size_t index = it->index;
    if (!failure) {
      selector_.record_ready(*connection);
      selection_.connection = std::move(it->connection);
      running_.erase(it);
      cancel_losers();
      return finish();
    }
    selector_.record_failure(index, *failure);
    selection_.failures.push_back({index, *failure});
    // Still inside this connection's callback: it is freed with the Race or the next failure.
    discarded_ = std::move(it->connection);
    running_.erase(it);
    launch_next();  // a failure does not wait for the stagger
  }

  void cancel_losers() {
    auto now = Clock::now();
    for (auto& attempt : running_) {
      const auto& lost = attempt.connection->endpoint();
      selector_.metrics_.connect_cancelled(lost);
      // A port that could not even complete TCP within the stagger is most likely
      // dropping SYNs: remember that, so the next message does not wait on it again.
      if (!attempt.connection->tcp_connected() &&
          now - attempt.started >= selector_.options_.stagger) {
        selector_.health_.record_suspect(attempt.index, now);
        log::info("endpoint_suspect",
                  {{"endpoint", lost.label()},
                   {"detail", "no TCP answer before another endpoint was ready"}});
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
  net::Timer check_timer_;  // bounds the RSET check of a pooled connection
  std::vector<std::size_t> candidates_;
  std::size_t next_ = 0;
  std::vector<Running> running_;
  std::unique_ptr<UpstreamConnection> checking_;
  std::unique_ptr<UpstreamConnection> discarded_;
  Selection selection_;
  bool finished_ = false;
};

struct RacingSelector::Probe {
  std::size_t index;
  std::unique_ptr<UpstreamConnection> connection;
};

RacingSelector::RacingSelector(uv_loop_t* loop, std::vector<EndpointRuntime> endpoints,
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
      probe_timer_(loop) {
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
  metrics_.connect_attempt(endpoints_[index].endpoint);
  return std::make_unique<UpstreamConnection>(loop_, endpoints_[index], timeouts_, helo_name_);
}

void RacingSelector::record_ready(const UpstreamConnection& connection) {
  health_.record_success(connection.endpoint().index);
  metrics_.connect_success(connection.endpoint(),
                           std::chrono::duration<double>(connection.ready_after()).count());
}

void RacingSelector::record_failure(std::size_t index, const AttemptFailure& failure) {
  auto now = Clock::now();
  health_.record_failure(index, failure.reason, now);
  const auto& endpoint = endpoints_[index].endpoint;
  metrics_.connect_failure(endpoint, failure.reason);
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
      if (failure) {
        record_failure(index, *failure);
        return;  // the probe is freed on the next tick
      }
      record_ready(*connection);
      log::info("endpoint_recovered", {{"endpoint", connection->endpoint().label()}});
      if (it != probes_.end()) pool_.give(std::move((*it)->connection));  // fail-back, warm
    });
  }
  // Drop finished probes (their connections were given away or failed).
  probes_.erase(std::remove_if(probes_.begin(), probes_.end(),
                               [this](const auto& p) {
                                 return !p->connection || !health_.entry(p->index).probing;
                               }),
                probes_.end());
  probe_timer_.start(options_.probe_interval, [this]() { probe_due_endpoints(); });
}

void RacingSelector::shutdown() {
  probe_timer_.stop();
  probes_.clear();
  pool_.clear();
}

}  // namespace portrelay::relay
