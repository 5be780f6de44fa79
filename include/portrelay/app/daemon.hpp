#pragma once
// Everything one running relay consists of, built from one config snapshot on one loop:
// endpoint runtimes, metrics (+ the HTTP listener), upstream selector, TLS and AUTH for local
// submissions, and the submission server. reload() builds the same from a new snapshot
// for new sessions while the sessions in flight finish on the old one.
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "portrelay/app/health_status.hpp"
#include "portrelay/config/config.hpp"
#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/async.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/net/loop_thread.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/relay/racing_selector.hpp"
#include "portrelay/server/authenticator.hpp"
#include "portrelay/server/submission_server.hpp"
#include "portrelay/spool/control_server.hpp"
#include "portrelay/spool/spool.hpp"

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
  spool::Spool* spool() { return spool_.get(); }  // null unless the config uses a spool

 private:
  // What one configuration snapshot turns into, built before anything is swapped so a
  // failure leaves the running one alone.
  struct Generation {
    std::shared_ptr<relay::RacingSelector> selector;
    server::SessionEnvironment environment;
  };
  Generation build(std::shared_ptr<const config::Config> config);
  // Background deliveries go over the current selector.
  void use_selector_for_spool();
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
  std::unique_ptr<spool::Spool> spool_;            // before the server: sessions' sinks use it
  std::unique_ptr<spool::ControlServer> control_;  // `portrelay queue` while running
  std::function<config::Config()> config_reader_;
  std::unique_ptr<server::SubmissionServer> server_;
};

// Runs a Daemon on its own loop thread. Used by `portrelay demo` and by the tests, which
// drive it from the outside with ordinary blocking clients.
class DaemonThread {
 public:
  explicit DaemonThread(config::Config config);
  ~DaemonThread();  // stop() if still running
  // Returns once listeners are bound; throws what the Daemon threw.
  void start();
  void stop(config::Duration grace = std::chrono::seconds(5));
  std::vector<std::uint16_t> listener_ports() const { return ports_; }
  std::uint16_t metrics_port() const { return metrics_port_; }
  std::string metrics_text();  // serialized on the loop thread's registry (thread-safe)
  // Daemon::reload on the loop thread with a config parsed from `toml` (named `source` in
  // errors) or read from `path`; waits for the result. Any thread but the loop's.
  bool reload_text(const std::string& toml, const std::string& source = "reload.toml");
  bool reload_file(const std::string& path);
  // Runs `task` on the loop thread and waits for it. Any thread but the loop's; false if
  // the daemon is not running.
  bool run_on_loop(std::function<void(Daemon&)> task);
  // `portrelay queue retry --all` from a test: every queued message is due now.
  bool retry_all() {
    return run_on_loop([](Daemon& daemon) {
      if (daemon.spool()) (void)daemon.spool()->retry("");
    });
  }
  // uv_loop_close()'s result after stop(): 0 unless a handle was left open.
  int loop_close_status() const { return thread_.close_status(); }

 private:
  bool reload(std::function<config::Config()> read);

  config::Config config_;
  net::LoopThread thread_;
  std::unique_ptr<Daemon> daemon_;
  // A reload asked for by another thread, run by `reload_signal_` on the loop thread.
  std::mutex reload_mutex_;
  std::function<config::Config()> reload_request_;
  std::vector<std::pair<std::function<void(Daemon&)>, std::promise<void>>> loop_tasks_;
  std::promise<bool> reload_result_;
  std::unique_ptr<net::Async> reload_signal_;
  std::vector<std::uint16_t> ports_;
  std::uint16_t metrics_port_ = 0;
  config::Duration grace_{};
};

}  // namespace portrelay
