#include <uv.h>

#include <csignal>
#include <iostream>

#include "portrelay/cli/commands.hpp"
#include "portrelay/daemon.hpp"
#include "portrelay/log.hpp"

namespace portrelay::cli {

int run(const RunOptions& options) {
  config::Config config;
  try {
    config = config::load_config_file(options.config_path);
  } catch (const config::ConfigError& error) {
    std::cerr << error.what() << "\n";
    return 1;
  }
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

  struct Signals {
    uv_signal_t term, interrupt;
  } signals{};
  auto on_signal = [](uv_signal_t* handle, int signum) {
    auto* daemon = static_cast<Daemon*>(handle->data);
    log::info("signal", {{"signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"}});
    // A second signal while draining is ignored; the grace period bounds the wait.
    uv_signal_stop(handle);
    auto grace = std::chrono::seconds(static_cast<int>(reinterpret_cast<std::intptr_t>(
        uv_handle_get_data(reinterpret_cast<uv_handle_t*>(handle->loop->data)))));
    daemon->shutdown(grace, [loop = handle->loop]() { uv_stop(loop); });
  };
  // The grace period travels through the loop's data pointer (a plain integer).
  uv_timer_t grace_carrier;
  uv_timer_init(loop, &grace_carrier);
  grace_carrier.data = reinterpret_cast<void*>(static_cast<std::intptr_t>(options.shutdown_grace));
  loop->data = &grace_carrier;
  for (auto [handle, signum] : {std::pair{&signals.term, SIGTERM}, {&signals.interrupt, SIGINT}}) {
    uv_signal_init(loop, handle);
    handle->data = daemon.get();
    uv_signal_start(handle, on_signal, signum);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close(reinterpret_cast<uv_handle_t*>(&signals.term), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&signals.interrupt), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&grace_carrier), nullptr);
  daemon.reset();
  uv_run(loop, UV_RUN_DEFAULT);
  log::info("stopped", {});
  return 0;
}

}  // namespace portrelay::cli
