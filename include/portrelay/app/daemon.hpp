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
//
// [server] workers > 1 (passthrough only): the loop the Daemon is built on is the main
// loop; workers - 1 WorkerLoops (worker_loop.hpp), each a thread with its own listeners on
// the same addresses (SO_REUSEPORT), sessions and Generation, take clients too. Per daemon
// and shared by every loop: metrics, the session limits (server::SessionCensus). Reload
// and shutdown reach every loop. One health table (relay::SharedHealth, the main loop's
// selector's) serves every loop's selector, and so do the upstreams' pauses
// (relay::SharedPauses); only the main loop probes. The metrics endpoint, the
// heartbeat and the control socket stay on the main loop.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "portrelay/app/health_status.hpp"
#include "portrelay/config/config.hpp"
#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/net/loop_mailbox.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/relay/racing_selector.hpp"
#include "portrelay/server/authenticator.hpp"
#include "portrelay/server/session_census.hpp"
#include "portrelay/server/submission_server.hpp"
#include "portrelay/spool/spool_service.hpp"

namespace portrelay {

class MetricsHttpServer;
class WorkerLoop;

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
  // Event loops taking sessions: 1 + the worker loops ([server] workers, or 1 where the
  // daemon limits it: see the log line workers_limited).
  std::size_t loops() const { return 1 + workers_.size(); }
  // Sessions open on every loop (the workers' as last published).
  std::size_t session_count() const;
  // Every loop's session counts (thread-safe).
  const server::SessionCensus& session_census() const { return *census_; }

  // What one configuration snapshot turns into on one loop, built before anything is
  // swapped so a failure leaves the running one alone.
  struct Generation {
    std::shared_ptr<relay::RacingSelector> selector;
    server::SessionEnvironment environment;
  };
  // What a worker loop's selector shares with the main loop's: the endpoints' health and
  // the upstreams' pauses.
  struct Shared {
    std::shared_ptr<relay::SharedHealth> health;
    std::shared_ptr<relay::SharedPauses> pauses;
  };

 private:
  // On `loop`'s thread (the main loop's, or a worker's: then it reads only what does not
  // change after construction: metrics_ and spool_, which is null with workers). A worker
  // loop's selector gets `shared`, the main loop's selector's health table and pauses, and
  // leaves the probes to it; empty: the main loop's own.
  Generation build(std::shared_ptr<const config::Config> config, net::Loop& loop,
                   Shared shared = {});
  Shared shared_with_workers() const {
    return {selector_->shared_health(), selector_->shared_pauses()};
  }
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
  // [server] workers: the session limits' counts of every loop, and the extra loops. The
  // mailbox takes their "done" of a shutdown back to this loop; it outlives them.
  std::size_t workers_wanted_ = 1;
  std::shared_ptr<server::SessionCensus> census_;
  std::unique_ptr<net::LoopMailbox> mailbox_;
  std::vector<std::unique_ptr<WorkerLoop>> workers_;
};

}  // namespace portrelay
