#pragma once
// app::Daemon, the composition root: everything one running relay consists of, built from
// one config snapshot on one loop, in this order:
//   metrics
//   spool::Service     when the config uses a spool: the queue, its control socket and
//                      the sinks that put mail in it (spool_service.hpp)
//   Generation         what a snapshot turns into: endpoint runtimes, the upstream
//                      selector, the sessions' TLS context, authenticator and sink factory
//   SubmissionServer   the listeners' sessions
// start() then binds the listeners and the metrics endpoint (/metrics, /healthz, /readyz).
// reload() builds a new Generation from a new snapshot for new sessions while the sessions
// in flight finish on the old one. shutdown() ends the sessions, then the spool's
// deliveries (one grace for both), then the selector.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "portrelay/app/health_status.hpp"
#include "portrelay/config/config.hpp"
#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/relay/racing_selector.hpp"
#include "portrelay/server/authenticator.hpp"
#include "portrelay/server/submission_server.hpp"
#include "portrelay/spool/spool_service.hpp"

namespace portrelay {

class MetricsHttpServer;

class Daemon {
 public:
  // Builds everything; throws std::runtime_error (or tls::TlsError) with a readable message.
  Daemon(net::Loop& loop, config::Config config);
  ~Daemon();

  // Binds listeners and the metrics endpoint (/metrics, /healthz, /readyz).
  void start();
  void shutdown(config::Duration grace, std::function<void()> done);

  // Reads a new configuration with `read` (which throws config::ConfigError or another
  // std::exception on a bad file) and applies it: new sessions and new upstream
  // connections use it; sessions in flight keep the snapshot they started with (their
  // selector, pool and chain stay alive until they end). The previous selector's idle
  // pooled connections are closed. Anything that cannot be built (bad file, unreadable
  // TLS key or users file, a changed listening address, which needs a restart) leaves the
  // running configuration untouched. Logs `reload` or `reload_failed`, sets the reload
  // metrics, returns whether the new configuration was applied. Loop thread.
  // `failure`, when given, receives why the running configuration was kept.
  bool reload(const std::function<config::Config()>& read, std::string* failure = nullptr);
  // How the daemon reads its file again (`portrelay run` sets it; SIGHUP and the control
  // socket's "reload" request, `portrelay reload`, both use it). Call before start().
  void set_config_reader(std::function<config::Config()> read) { config_reader_ = std::move(read); }

  const config::Config& config() const { return *config_; }
  metrics::Metrics& metrics() { return *metrics_; }
  std::vector<std::uint16_t> listener_ports() const { return server_->bound_ports(); }
  std::uint16_t metrics_port() const;
  // Null unless the config uses a spool.
  spool::Spool* spool() { return spool_ ? &spool_->spool() : nullptr; }

 private:
  // What one configuration snapshot turns into, built before anything is swapped so a
  // failure leaves the running one alone.
  struct Generation {
    std::shared_ptr<relay::RacingSelector> selector;
    server::SessionEnvironment environment;
  };
  Generation build(std::shared_ptr<const config::Config> config);
  // The control socket's "reload" request (`portrelay reload`): reload() with the reader
  // set_config_reader installed, and its verdict as the answer line (SIGHUP cannot return
  // one).
  std::string reload_on_request();
  void apply(config::Config next);
  // Every second on the loop: tells /healthz the loop is alive and /readyz whether the
  // daemon can take mail now (why not, if not).
  void heartbeat();
  std::optional<std::string> not_ready_reason() const;

  net::Loop& loop_;
  std::shared_ptr<const config::Config> config_;
  std::unique_ptr<metrics::Metrics> metrics_;
  std::shared_ptr<HealthStatus> health_status_ = std::make_shared<HealthStatus>();
  // /metrics, /healthz, /readyz; after metrics_ and health_status_: stopped before them.
  std::unique_ptr<MetricsHttpServer> http_server_;
  net::Timer heartbeat_timer_;
  bool shutting_down_ = false;
  // Shared with the sessions started under it; the current one only.
  std::shared_ptr<relay::RacingSelector> selector_;
  // The queue, its control socket and its sinks, when the config uses a spool; before the
  // server: the sessions' sinks use it.
  std::unique_ptr<spool::Service> spool_;
  std::function<config::Config()> config_reader_;
  std::unique_ptr<server::SubmissionServer> server_;
};

}  // namespace portrelay
