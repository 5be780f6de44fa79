#include <uv.h>

#include <csignal>
#include <iostream>

#include "portrelay/cli/commands.hpp"
#include "portrelay/daemon.hpp"
#include "portrelay/log.hpp"

namespace portrelay::cli {

int run(const RunOptions& options) {
  auto loaded = load_config_or_report(options.config_path);
  if (!loaded) return 1;
  config::Config config = std::move(*loaded);
  for (const auto& warning : config.warnings) log::warn("config_warning", {{"detail", warning}});
  std::signal(SIGPIPE, SIG_IGN);

  uv_loop_t* loop = uv_default_loop();
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

  struct SignalContext {
    Daemon* daemon;
    config::Duration grace;
    bool stopping = false;
  } context{daemon.get(), options.shutdown_grace};
  uv_signal_t term{}, interrupt{};
  for (auto [handle, signum] : {std::pair{&term, SIGTERM}, {&interrupt, SIGINT}}) {
    uv_signal_init(loop, handle);
    handle->data = &context;
    uv_signal_start(
        handle,
        [](uv_signal_t* handle, int signum) {
          auto* context = static_cast<SignalContext*>(handle->data);
          log::info("signal", {{"signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"}});
          // Further signals while draining change nothing: the grace period bounds the wait.
          if (context->stopping) return;
          context->stopping = true;
          context->daemon->shutdown(context->grace, [loop = handle->loop]() { uv_stop(loop); });
        },
        signum);
  }
  // SIGHUP (systemctl reload) must not end the daemon, which its default action would do with
  // no log line; until configuration reload exists it is logged and ignored.
  uv_signal_t hangup{};
  uv_signal_init(loop, &hangup);
  uv_signal_start(
      &hangup,
      [](uv_signal_t*, int) {
        log::warn(
            "reload_not_supported",
            {{"signal", "SIGHUP"},
             {"detail", "configuration reload is not implemented; restart to apply changes"}});
      },
      SIGHUP);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close(reinterpret_cast<uv_handle_t*>(&hangup), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&term), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&interrupt), nullptr);
  daemon.reset();
  uv_run(loop, UV_RUN_DEFAULT);
  log::info("stopped", {});
  return 0;
}

}  // namespace portrelay::cli
