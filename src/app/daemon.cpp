#include "portrelay/app/daemon.hpp"

#include <chrono>
#include <stdexcept>

#include "metrics_http_server.hpp"
#include "portrelay/app/config_changes.hpp"
#include "portrelay/base/log.hpp"
#include "portrelay/relay/passthrough_relay.hpp"
#include "portrelay/server/users_file.hpp"
#include "portrelay/tls/context.hpp"
#include "worker_loop.hpp"

namespace portrelay {
namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// How many loops the daemon runs: [server] workers, or 1 where what several loops would
// need is not built yet (said in the log, once, at start).
std::size_t effective_workers(const config::Config& config) {
  const std::size_t wanted = config.server.workers;
  if (wanted <= 1) return 1;
  const char* reason = nullptr;
  if (config.relay.uses_spool()) {
    // One spool, one committer: sessions on other loops would need their verdicts carried
    // across loops, which is not built.
    reason = "spool";
  } else {
    // Connection, rate and daily limits are counted by each selector's gates: with several
    // loops each would allow the whole limit.
    for (const config::Upstream& upstream : config.upstreams) {
      const config::UpstreamLimits& limits = upstream.limits;
      if (limits.max_connections || limits.max_message_rate > 0 || limits.max_recipients_per_day)
        reason = "upstream_limits";
    }
  }
  if (!reason) return wanted;
  log::info("workers_limited",
            {{"workers", "1"}, {"configured", std::to_string(wanted)}, {"reason", reason}});
  return 1;
}

}  // namespace

Daemon::Daemon(net::Loop& loop, config::Config config)
    : loop_(loop),
      config_(std::make_shared<const config::Config>(std::move(config))),
      heartbeat_timer_(loop.uv()) {
  metrics_ = std::make_unique<metrics::Metrics>(config_->chain, PORTRELAY_VERSION);
  metrics_->add_routes(config_->routes);
  if (config_->relay.uses_spool())
    spool_ = std::make_unique<spool::Service>(loop_, *config_, *metrics_);
  workers_wanted_ = effective_workers(*config_);
  census_ = std::make_shared<server::SessionCensus>(workers_wanted_);
  Generation first = build(config_, loop_);
  selector_ = first.selector;
  server_ = std::make_unique<server::SubmissionServer>(
      std::shared_ptr<const config::ServerConfig>(config_, &config_->server),
      std::move(first.environment));
  server_->share_census(census_, 0);
  metrics_->config_reload(true, unix_now());
}

Daemon::~Daemon() = default;

Daemon::Generation Daemon::build(std::shared_ptr<const config::Config> config, net::Loop& loop,
                                 Shared shared) {
  Generation generation;
  // Everything that reads files (TLS keys and CA files, password files, the users file)
  // or may throw happens here, before the caller swaps anything.
  auto runtimes = relay::build_endpoint_runtimes(*config);
  server::SessionEnvironment environment;
  environment.loop = &loop;
  environment.metrics = metrics_.get();
  environment.command_timeout = config->server.command_timeout;
  environment.envelope_policy = std::make_shared<const relay::EnvelopePolicy>(config);
  environment.data_timeout = config->server.data_timeout;
  environment.identity =
      std::make_shared<const config::IdentityRewriter>(*config, config::mail_domain(*config));
  environment.add_missing_headers = config->server.add_missing_headers;
  if (!config->server.tls_cert.empty())
    environment.tls_context =
        tls::Context::server({config->server.tls_cert, config->server.tls_key});
  if (!config->server.users_file.empty())
    environment.authenticator = server::load_users_file(loop.uv(), config->server.users_file);
  relay::RacingOptions options = relay::RacingOptions::from(*config);
  if (shared.health) {
    options.shared_health = std::move(shared.health);
    options.shared_pauses = std::move(shared.pauses);
    options.probes = false;
  }
  generation.selector = std::make_shared<relay::RacingSelector>(
      loop, std::move(runtimes), relay::timeouts_from(config->relay), config->relay.helo_name,
      std::move(options), *metrics_, config->routes);
  // Each session's relay holds the selector: the selector of a replaced configuration
  // lives until the last session started under it ends. (A spool is there for every
  // snapshot or for none: restart_required refuses to switch it.)
  if (spool_) {
    environment.make_sink = spool_->session_sinks(config->relay, generation.selector);
  } else {
    environment.make_sink =
        [&loop = loop, &metrics = *metrics_, selector = generation.selector](
            const std::string& session_id) -> std::unique_ptr<relay::MessageSink> {
      return std::make_unique<relay::PassthroughRelay>(loop, selector, metrics, session_id);
    };
  }
  // portrelay's own SIZE: the largest message some endpoint of the chain takes (#18).
  environment.message_size_limit = [selector = generation.selector](std::uint64_t configured) {
    return selector->largest_message(configured);
  };
  generation.environment = std::move(environment);
  return generation;
}

void Daemon::start() {
  // Recovery first (what was queued before is delivered), then the control socket.
  if (spool_) spool_->start(selector_, [this]() { return reload_on_request(); });
  server_->start(/*reuse_port=*/workers_wanted_ > 1);
  if (workers_wanted_ > 1) {
    // The workers bind the ports this loop got (the configuration may say port 0).
    const std::vector<std::uint16_t> ports = server_->bound_ports();
    mailbox_ = std::make_unique<net::LoopMailbox>(loop_.uv());
    for (std::size_t index = 1; index < workers_wanted_; ++index) {
      auto worker = std::make_unique<WorkerLoop>(
          index,
          [this, batch = loop_.batches_log_lines()](std::shared_ptr<const config::Config> config,
                                                    net::Loop& loop, Shared shared) {
            if (batch) loop.batch_log_lines();  // as this loop does (portrelay run)
            return build(std::move(config), loop, std::move(shared));
          },
          census_, server_->auth_failure_tracker());
      worker->start(config_, ports, shared_with_workers());
      workers_.push_back(std::move(worker));
    }
    log::info("workers", {{"loops", std::to_string(loops())},
                          {"accept", "SO_REUSEPORT"},
                          {"health", "shared"},
                          {"pauses", "shared"},
                          {"probes", "main loop"}});
  }
  if (config_->metrics.enabled) {
    // Throws "cannot serve metrics on ADDRESS: why".
    http_server_ =
        std::make_unique<MetricsHttpServer>(config_->metrics.listen, *metrics_, health_status_);
    log::info("metrics_listening",
              {{"address", config_->metrics.listen.str()},
               {"path", "/metrics"},
               {"health", "/healthz /readyz"},
               {"max_connections", std::to_string(http_server_->connection_limit())}});
  }
  heartbeat();
}

void Daemon::heartbeat() {
  health_status_->beat(HealthStatus::Clock::now(), not_ready_reason());
  heartbeat_timer_.start(std::chrono::seconds(1), [this]() { heartbeat(); });
}

std::optional<std::string> Daemon::not_ready_reason() const {
  if (shutting_down_) return "shutting down";
  if (server_->bound_ports().empty()) return "no listener is bound";
  const relay::HealthTable health = selector_->health();  // a copy: other loops share it
  if (health.any_usable(relay::HealthTable::Clock::now())) return std::nullopt;
  for (std::size_t i = 0; i < health.size(); ++i)
    if (health.entry(i).state == relay::HealthTable::State::Unknown && health.entry(i).refreshing)
      return "waiting for the first probe of the upstream endpoints";
  return "no upstream endpoint is usable: all " + std::to_string(health.size()) +
         " are cooling down after failures";
}

std::size_t Daemon::session_count() const {
  // The other loops' as they last published them (server::SessionCensus).
  return server_->session_count() + census_->others(0, std::string()).live;
}

std::uint16_t Daemon::metrics_port() const { return http_server_ ? http_server_->port() : 0; }

bool Daemon::reload(const std::function<config::Config()>& read, std::string* failure) {
  try {
    apply(read());
    metrics_->config_reload(true, unix_now());
    return true;
  } catch (const std::exception& error) {
    // config::ConfigError says file:line:col; TLS and users-file errors name their file.
    log::error("reload_failed", {{"detail", error.what()}, {"kept", "running configuration"}});
    metrics_->config_reload(false, unix_now());
    if (failure) *failure = error.what();
    return false;
  }
}

std::string Daemon::reload_on_request() {
  if (!config_reader_) return "error reload is not available";
  std::string failure;
  if (!reload(config_reader_, &failure)) return "error " + failure;
  return "ok reloaded " + config_->source;
}

void Daemon::apply(config::Config next_config) {
  if (auto why = restart_required(*config_, next_config)) throw std::runtime_error(*why);
  auto next = std::make_shared<const config::Config>(std::move(next_config));
  Generation generation = build(next, loop_);  // throws before anything changed

  const auto changes = compare_chains(config_->chain, next->chain);
  generation.selector->inherit_health(*selector_);
  metrics_->add_endpoints(next->chain);
  metrics_->add_routes(next->routes);
  // The old selector keeps serving the sessions that hold it; its idle connections go
  // now (the simple rule: no pooled connection outlives the configuration it was made
  // with), and what those sessions hand back later is closed, not pooled.
  selector_->retire();
  selector_ = generation.selector;
  if (spool_) spool_->reconfigure(*next, selector_);
  server_->reconfigure(std::shared_ptr<const config::ServerConfig>(next, &next->server),
                       std::move(generation.environment));
  // Every loop serves the new configuration before reload() returns. This one built the
  // same snapshot already, so a worker failing is unlikely (a file changed in between).
  for (std::size_t index = 0; index < workers_.size(); ++index) {
    try {
      workers_[index]->reconfigure(next, shared_with_workers());
    } catch (const std::exception& error) {
      log::error("reload_failed", {{"worker", std::to_string(index + 1)},
                                   {"detail", error.what()},
                                   {"kept", "running configuration on that worker"}});
    }
  }
  config_ = next;
  // Before the lines below, so the reload is reported in the format it chose.
  log::set_min_level(config_->log.level);
  log::set_format(config_->log.format);

  for (const auto& warning : config_->warnings) log::warn("config_warning", {{"detail", warning}});
  log::info("reload", {{"config", config_->source},
                       {"endpoints", std::to_string(changes.endpoints)},
                       {"added", std::to_string(changes.added)},
                       {"removed", std::to_string(changes.removed)},
                       {"changed", std::to_string(changes.changed)},
                       {"unchanged", std::to_string(changes.unchanged)},
                       {"reordered", changes.reordered ? "yes" : "no"},
                       {"sessions_on_previous", std::to_string(session_count())},
                       {"starttls", config_->server.tls_cert.empty() ? "off" : "on"},
                       {"client_auth", config_->server.users_file.empty() ? "off" : "on"}});
}

void Daemon::shutdown(config::Duration grace, std::function<void()> done) {
  log::info("shutting_down", {{"sessions", std::to_string(session_count())}});
  // One deadline for everything: sessions and background deliveries share the grace (a
  // supervisor's stop timeout is sized for one grace, not two). No delivery starts now.
  const auto deadline = std::chrono::steady_clock::now() + grace;
  if (spool_) spool_->stop_starting_deliveries();
  shutting_down_ = true;
  health_status_->beat(HealthStatus::Clock::now(), not_ready_reason());
  // Every loop's sessions end within the same grace; the rest waits for the last of them.
  auto loops_left = std::make_shared<std::size_t>(loops());
  auto after_sessions = [this, loops_left, deadline, done = std::move(done)]() {
    if (--*loops_left > 0) return;
    // The workers' loops are idle now: their threads end at once.
    if (mailbox_) mailbox_->close();
    for (auto& worker : workers_) worker->stop();
    auto finish = [this, done]() {
      heartbeat_timer_.stop();  // the loop must run dry
      selector_->shutdown();
      done();
    };
    // What is still in flight at the deadline is abandoned and stays queued for next start.
    if (spool_)
      spool_->shutdown(deadline, finish);
    else
      finish();
  };
  for (auto& worker : workers_)
    worker->shutdown(grace, [this, after_sessions]() {
      // On the worker's thread: the count belongs to this loop.
      if (!mailbox_->post(after_sessions)) return;
    });
  server_->shutdown(grace, after_sessions);
}

}  // namespace portrelay
