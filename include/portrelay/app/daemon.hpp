#pragma once
// Everything one running relay consists of, built from one config snapshot on one loop:
// endpoint runtimes, metrics (+ HTTP exposer), upstream selector, TLS and AUTH for local
// submissions, and the submission server.
#include <functional>
#include <memory>
#include <vector>

#include "portrelay/config/config.hpp"
#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/net/loop_thread.hpp"
#include "portrelay/relay/racing_selector.hpp"
#include "portrelay/server/authenticator.hpp"
#include "portrelay/server/submission_server.hpp"

namespace prometheus {
class Exposer;
}

namespace portrelay {

class Daemon {
 public:
  // Builds everything; throws std::runtime_error (or tls::TlsError) with a readable message.
  Daemon(net::Loop& loop, config::Config config);
  ~Daemon();

  void start();  // binds listeners and the metrics endpoint
  void shutdown(config::Duration grace, std::function<void()> done);

  const config::Config& config() const { return config_; }
  metrics::Metrics& metrics() { return *metrics_; }
  std::vector<std::uint16_t> listener_ports() const { return server_->bound_ports(); }
  std::uint16_t metrics_port() const;

 private:
  net::Loop& loop_;
  config::Config config_;
  std::unique_ptr<metrics::Metrics> metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<relay::RacingSelector> selector_;
  std::unique_ptr<server::Authenticator> authenticator_;
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
  // uv_loop_close()'s result after stop(): 0 unless a handle was left open.
  int loop_close_status() const { return thread_.close_status(); }

 private:
  config::Config config_;
  net::LoopThread thread_;
  std::unique_ptr<Daemon> daemon_;
  std::vector<std::uint16_t> ports_;
  std::uint16_t metrics_port_ = 0;
  config::Duration grace_{};
};

}  // namespace portrelay
