#pragma once
// app::DaemonThread: a Daemon on a loop thread of its own, for `portrelay demo` and the
// tests, which drive the real relay from the outside with ordinary blocking clients.
// `portrelay run` does not use it: it runs the Daemon on the process's default loop.
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "portrelay/app/daemon.hpp"
#include "portrelay/config/config.hpp"
#include "portrelay/net/async.hpp"
#include "portrelay/net/loop_thread.hpp"

namespace portrelay {

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
