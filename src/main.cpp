// portrelay command line. CLI11 gives every command its --help and consistent errors.
#include <CLI/CLI.hpp>

#include <csignal>

#include "portrelay/cli/commands.hpp"

int main(int argc, char** argv) {
  // A peer that resets while a reply is queued makes write() raise SIGPIPE, which would end
  // the whole process; every command handles EPIPE as an ordinary write error instead.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{
      "portrelay: an SMTP relay that finds the upstream port that works.\n"
      "Applications submit mail locally; portrelay relays it over an ordered failover\n"
      "chain of upstream endpoints (587 STARTTLS, 465 implicit TLS, 2525, 25)."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "portrelay " PORTRELAY_VERSION);

  std::string config_path;
  portrelay::cli::RunOptions run_options;
  auto* run = app.add_subcommand("run", "Run the relay daemon (foreground; logs to stderr)");
  run->add_option("-c,--config", run_options.config_path, "Configuration file (TOML)")->required();
  run->add_option("--shutdown-grace", run_options.shutdown_grace,
                  "Seconds to let in-flight transactions finish on SIGTERM/SIGINT")
      ->default_val(30);

  auto* check =
      app.add_subcommand("check", "Validate a configuration and print the effective chain");
  check->add_option("-c,--config", config_path, "Configuration file (TOML)")->required();

  portrelay::cli::ProbeOptions probe_options;
  auto* probe = app.add_subcommand(
      "probe",
      "Check every endpoint now (DNS, TCP, TLS, greeting, EHLO, AUTH) without sending mail; "
      "exit 0 if at least one is usable, 2 if none is");
  probe->add_option("-c,--config", probe_options.config_path, "Configuration file (TOML)")
      ->required();
  probe->add_flag("--json", probe_options.json, "Machine-readable output");

  portrelay::cli::DemoOptions demo_options;
  auto* demo = app.add_subcommand(
      "demo", "Relay one message through a built-in loopback failover chain and show the metrics");
  demo->add_option("--port-base", demo_options.port_base,
                   "Use ports from here on instead of the real 587/465/2525/25 on 127.0.8.1");

  auto* version = app.add_subcommand("version", "Print the version");

  auto* hash = app.add_subcommand(
      "hash-password", "Read a password on stdin, print a users-file line for client AUTH");
  std::string username;
  hash->add_option("username", username, "User name for the line")->required();

  CLI11_PARSE(app, argc, argv);

  if (*run) return portrelay::cli::run(run_options);
  if (*check) return portrelay::cli::check(config_path);
  if (*probe) return portrelay::cli::probe(probe_options);
  if (*demo) return portrelay::cli::demo(demo_options);
  if (*version) return portrelay::cli::version();
  if (*hash) return portrelay::cli::hash_password(username);
  return 2;
}
