#pragma once
// One function per `portrelay` subcommand; each returns the process exit code.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "portrelay/config/config.hpp"

namespace portrelay::cli {

struct RunOptions {
  std::string config_path;
  config::Duration shutdown_grace = std::chrono::seconds(30);
  // --log-level: wins over [log] level, at start and on every reload.
  std::optional<log::Level> log_level;
};

struct DemoOptions {
  int port_base = 0;  // 0: real port numbers on 127.0.8.x, falling back to ephemeral ones
};

struct ProbeOptions {
  std::string config_path;
  bool json = false;
  std::string route;  // --route NAME: only that [[route]]'s chain, in its order
};

// Loads the file, printing "file:line:col: message" on stderr if it is invalid.
std::optional<config::Config> load_config_or_report(const std::string& path);

struct QueueOptions {
  std::string config_path;
  std::string action;  // list, show, retry, delete, bounce
  std::string id;
  bool all = false;   // retry --all
  bool json = false;  // list --json
};

struct ReloadOptions {
  std::string config_path;
  int pid = 0;  // --pid: SIGHUP target when the configuration has no control socket
};

int run(const RunOptions& options);
// Checks the file, asks the running daemon to apply it, prints its verdict: 0 applied, 1
// refused (here or by the daemon, which keeps its configuration), 2 no daemon answered.
int reload(const ReloadOptions& options);
int queue(const QueueOptions& options);
int probe(const ProbeOptions& options);
int check(const std::string& config_path);
int demo(const DemoOptions& options);
int version();
// GET /healthz (or /readyz) from the running daemon's metrics listener: 0 on 200.
int healthcheck(const std::string& config_path, bool ready);
int hash_password(const std::string& username);
// sendmail(8) with its own option syntax (`arguments` without the program name); exit status
// per sysexits.h.
int sendmail(const std::vector<std::string>& arguments);
// mailq(1): `portrelay queue list` when the configuration keeps a spool; "empty" only
// when it keeps none or there is no configuration; EX_NOPERM (77) when this user may not
// read the configuration or the spool.
int mailq();

}  // namespace portrelay::cli
