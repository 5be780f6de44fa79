#include <unistd.h>
#include <uv.h>

#include <csignal>
#include <iostream>

#include "portrelay/app/daemon.hpp"
#include "portrelay/app/descriptor_limit.hpp"
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
  // The log settings come first so that every line, the warnings included, follows them.
  if (options.log_level) config.log.level = *options.log_level;
  log::set_min_level(config.log.level);
  log::set_format(config.log.format);
  log::set_journal_prefix(log::is_journal_stream(STDERR_FILENO));
  for (const auto& warning : config.warnings) log::warn("config_warning", {{"detail", warning}});
  // Enough open files for max_sessions before anything is opened (descriptor_limit.hpp).
  const std::uint64_t files_needed = descriptors_needed(config);
  const DescriptorLimit files = raise_descriptor_limit(files_needed);
  if (files.soft != files.before) {
    log::info("open_files_limit",
              {{"from", std::to_string(files.before)}, {"to", std::to_string(files.soft)}});
  }
  if (files.soft < files_needed) {
    log::warn("open_files_limit_low",
              {{"limit", std::to_string(files.soft)},
               {"needed", std::to_string(files_needed)},
               {"detail",
                "clients beyond it are dropped at accept: raise the hard limit "
                "(LimitNOFILE=, ulimit -Hn, docker --ulimit nofile=)"}});
  }

  uv_loop_t* raw = uv_default_loop();
  int close_status = 0;
  {
    net::Loop loop(raw);
    // The daemon's lines leave once per loop turn, not one write(2) each (#19). Only here:
    // the demo and the in-process tests read a line as soon as the reply it goes with.
    loop.batch_log_lines();
    // The file again, for SIGHUP and `portrelay reload`; --log-level still wins.
    auto read_config = [&options]() {
      config::Config next = config::load_config_file(options.config_path);
      if (options.log_level) next.log.level = *options.log_level;
      return next;
    };
    std::unique_ptr<Daemon> daemon;
    try {
      daemon = std::make_unique<Daemon>(loop, config);
      daemon->set_config_reader(read_config);
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
    // SIGHUP (systemctl reload): read the file again. New sessions and new upstream
    // connections use it; sessions in flight finish on what they started with. A file
    // that does not load leaves the running configuration in place (reload_failed).
    hangup.start(SIGHUP, [&](int) {
      log::info("signal", {{"signal", "SIGHUP"}});
      if (stopping) return;
      daemon->reload(read_config);
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
