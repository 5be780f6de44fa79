#include <uv.h>

#include <csignal>
#include <iostream>

#include "portrelay/app/daemon.hpp"
#include "portrelay/base/log.hpp"
#include "portrelay/cli/commands.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/net/loop_thread.hpp"
#include "portrelay/net/signal.hpp"

namespace portrelay::cli {

int run(const RunOptions& options) {
  auto loaded = load_config_or_report(options.config_path);
  if (!loaded) return 1;
  config::Config config = std::move(*loaded);
  for (const auto& warning : config.warnings) log::warn("config_warning", {{"detail", warning}});

  uv_loop_t* raw = uv_default_loop();
  int close_status = 0;
  {
    net::Loop loop(raw);
    std::unique_ptr<Daemon> daemon;
    try {
      daemon = std::make_unique<Daemon>(loop, config);
      daemon->start();
    } catch (const std::exception& error) {
      log::error("startup_failed", {{"detail", error.what()}});
      return 1;
    }
    log::info("started", {{"version", PORTRELAY_VERSION},
                          {"config", options.config_path},
                          {"endpoints", std::to_string(config.chain.size())}});

    bool stopping = false;
    net::Signal term(raw), interrupt(raw), hangup(raw);
    auto on_signal = [&](int signum) {
      log::info("signal", {{"signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"}});
      // Further signals while draining change nothing: the grace period bounds the wait.
      if (stopping) return;
      stopping = true;
      term.close();
      interrupt.close();
      hangup.close();
      daemon->shutdown(options.shutdown_grace, []() {});
    };
    term.start(SIGTERM, on_signal);
    interrupt.start(SIGINT, on_signal);
    // SIGHUP (systemctl reload) must not end the daemon, which its default action would do
    // without a log line.
    hangup.start(SIGHUP, [](int) {
      log::warn("reload_not_supported",
                {{"signal", "SIGHUP"},
                 {"detail", "configuration reload is not implemented; restart to apply changes"}});
    });
    uv_run(raw, UV_RUN_DEFAULT);  // ends when the daemon has nothing left to do
    daemon.reset();
  }  // ~Loop frees what was deferred
  close_status = net::drain_and_close(raw);
  if (close_status != 0) log::error("loop_not_closed", {{"detail", uv_strerror(close_status)}});
  log::info("stopped", {});
  return close_status == 0 ? 0 : 1;
}

}  // namespace portrelay::cli
