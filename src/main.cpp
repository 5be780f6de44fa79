// portrelay command line. CLI11 gives every command its --help; usage errors exit 64
// (EX_USAGE). Invoked as `sendmail` or `mailq` (a link), it is those programs instead.
#include <CLI/CLI.hpp>
#include <csignal>
#include <filesystem>
#include <string_view>

#include "portrelay/base/log.hpp"
#include "portrelay/cli/commands.hpp"
#include "portrelay/cli/config_path.hpp"
#include "portrelay/cli/usage.hpp"
#include "portrelay/config/config.hpp"

namespace {

// --shutdown-grace takes a duration written as in the configuration file ("30s", "1m30s").
const CLI::Validator kDuration(
    [](std::string& text) -> std::string {
      if (portrelay::config::parse_duration(text)) return "";
      return "'" + text + "' is not a duration; write it with a unit, as in the config (\"30s\")";
    },
    "DURATION");

std::string config_help() {
  return "Configuration file (TOML); default: $" +
         std::string(portrelay::cli::kConfigPathVariable) + " or " +
         std::string(portrelay::cli::kDefaultConfigPath);
}

}  // namespace

int main(int argc, char** argv) {
  // A peer that resets while a reply is queued makes write() raise SIGPIPE, which would end
  // the whole process; every command handles EPIPE as an ordinary write error instead.
  std::signal(SIGPIPE, SIG_IGN);

  // sendmail(8) has its own option syntax ("-oi", "-FCronDaemon") that CLI11 cannot parse, so
  // it is dispatched before CLI11 sees the arguments: through a link named sendmail or mailq
  // (argv[0], as /usr/sbin/sendmail) or as `portrelay sendmail ...`.
  const std::string program = std::filesystem::path(argc > 0 ? argv[0] : "").filename();
  if (program == "sendmail") return portrelay::cli::sendmail({argv + 1, argv + argc});
  if (program == "mailq") return portrelay::cli::mailq();
  if (argc > 1 && std::string_view(argv[1]) == "sendmail")
    return portrelay::cli::sendmail({argv + 2, argv + argc});
  if (argc > 1 && std::string_view(argv[1]) == "mailq") return portrelay::cli::mailq();

  CLI::App app{
      "portrelay: an SMTP relay that finds the upstream port that works.\n"
      "Applications submit mail locally; portrelay relays it over an ordered failover\n"
      "chain of upstream endpoints (587 STARTTLS, 465 implicit TLS, 2525, 25).",
      "portrelay"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "portrelay " PORTRELAY_VERSION);

  std::string config_path;
  portrelay::cli::RunOptions run_options;
  std::string shutdown_grace = "30s";
  auto* run = app.add_subcommand("run", "Run the relay daemon (foreground; logs to stderr)");
  run->add_option("-c,--config", run_options.config_path, config_help());
  run->add_option("--shutdown-grace", shutdown_grace,
                  "How long in-flight transactions may take to finish on SIGTERM/SIGINT")
      ->check(kDuration)
      ->capture_default_str();
  std::string log_level;
  run->add_option("--log-level", log_level,
                  "Lowest level logged: debug, info, warn or error (overrides [log] level in the "
                  "configuration, also across reloads)")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  bool debug_transcript = false;
  run->add_flag("--debug-transcript", debug_transcript,
                "Log every SMTP line exchanged with upstreams (event=smtp_transcript); AUTH "
                "data and message bodies are left out");

  portrelay::cli::ReloadOptions reload_options;
  auto* reload = app.add_subcommand(
      "reload",
      "Check the configuration, make the running daemon apply it (systemctl reload) and print "
      "its verdict; exit 0 if applied, 1 if refused (the daemon keeps its old configuration), "
      "2 if no daemon answered");
  reload->add_option("-c,--config", reload_options.config_path, config_help());
  reload->add_option("--pid", reload_options.pid,
                     "The daemon to send SIGHUP to when the configuration keeps no spool (no "
                     "control socket to ask); the unit passes $MAINPID");

  auto* check =
      app.add_subcommand("check", "Validate a configuration and print the effective chain");
  check->add_option("-c,--config", config_path, config_help());

  portrelay::cli::ProbeOptions probe_options;
  auto* probe = app.add_subcommand(
      "probe",
      "Check every endpoint now (DNS, TCP, TLS, greeting, EHLO, AUTH) without sending mail; "
      "exit 0 if at least one is usable, 2 if none is");
  probe->add_option("-c,--config", probe_options.config_path, config_help());
  probe->add_flag("--json", probe_options.json, "Machine-readable output");
  probe->add_option("--route", probe_options.route,
                    "Probe only this [[route]]'s chain, in its failover order (\"default\": the "
                    "whole chain)");

  portrelay::cli::DemoOptions demo_options;
  auto* demo = app.add_subcommand(
      "demo", "Relay one message through a built-in loopback failover chain and show the metrics");
  demo->add_option("--port-base", demo_options.port_base,
                   "Use ports from here on instead of the real 587/465/2525/25 on 127.0.8.1");

  portrelay::cli::QueueOptions queue_options;
  auto* queue = app.add_subcommand(
      "queue", "Inspect and manage the spool (with or without a running daemon)");
  queue->add_option("-c,--config", queue_options.config_path, config_help());
  queue->require_subcommand(1);
  // Subcommands made from here on pass options they do not know up to `queue`, so
  // `queue list --config F` works as `queue --config F list` (and as `run --config F`).
  queue->fallthrough();
  auto* queue_list =
      queue->add_subcommand("list", "List queued and failed messages (default table)");
  queue_list->add_flag("--json", queue_options.json, "Machine-readable output");
  auto* queue_show =
      queue->add_subcommand("show", "Envelope, delivery state and headers of a message");
  queue_show->add_option("id", queue_options.id, "Queue id")->required();
  auto* queue_retry = queue->add_subcommand("retry", "Make a message (or --all) due now");
  queue_retry->add_option("id", queue_options.id, "Queue id");
  queue_retry->add_flag("--all", queue_options.all, "Every queued message");
  auto* queue_delete = queue->add_subcommand("delete", "Remove a message without a bounce");
  queue_delete->add_option("id", queue_options.id, "Queue id")->required();
  auto* queue_bounce =
      queue->add_subcommand("bounce", "Give up on a message: bounce it to its sender");
  queue_bounce->add_option("id", queue_options.id, "Queue id")->required();

  bool health_ready = false;
  auto* health = app.add_subcommand(
      "healthcheck",
      "Ask the running daemon's /healthz (or /readyz with --ready) on the metrics listener; "
      "exit 0 if it answers 200 (for container HEALTHCHECKs)");
  health->add_option("-c,--config", config_path, config_help());
  health->add_flag("--ready", health_ready, "Ask /readyz instead of /healthz");

  auto* version = app.add_subcommand("version", "Print the version");

  auto* hash = app.add_subcommand(
      "hash-password",
      "Print a users-file line for client AUTH; the password is asked twice on a terminal "
      "(not echoed), or read as one line from a pipe");
  std::string username;
  hash->add_option("username", username, "User name for the line")->required();

  // Listed for --help only: both are dispatched above.
  app.add_subcommand("sendmail",
                     "sendmail(8) for cron, PHP, mail(1): message on stdin to the local daemon "
                     "(see 'portrelay sendmail --help')")
      ->allow_extras();
  app.add_subcommand("mailq", "List the mail queue (as 'portrelay queue list')");

  if (auto status = portrelay::cli::parse_command_line(app, argc, argv)) return *status;

  if (*run) {
    run_options.config_path = portrelay::cli::resolve_config_path(run_options.config_path);
    run_options.shutdown_grace = *portrelay::config::parse_duration(shutdown_grace);
    portrelay::log::set_transcript(debug_transcript);
    if (!log_level.empty()) run_options.log_level = portrelay::log::parse_level(log_level);
    return portrelay::cli::run(run_options);
  }
  if (*reload) {
    reload_options.config_path = portrelay::cli::resolve_config_path(reload_options.config_path);
    return portrelay::cli::reload(reload_options);
  }
  if (*check) return portrelay::cli::check(portrelay::cli::resolve_config_path(config_path));
  if (*probe) {
    probe_options.config_path = portrelay::cli::resolve_config_path(probe_options.config_path);
    return portrelay::cli::probe(probe_options);
  }
  if (*demo) return portrelay::cli::demo(demo_options);
  if (*health)
    return portrelay::cli::healthcheck(portrelay::cli::resolve_config_path(config_path),
                                       health_ready);
  if (*queue) {
    queue_options.config_path = portrelay::cli::resolve_config_path(queue_options.config_path);
    for (auto* sub : queue->get_subcommands()) queue_options.action = sub->get_name();
    return portrelay::cli::queue(queue_options);
  }
  if (*version) return portrelay::cli::version();
  if (*hash) return portrelay::cli::hash_password(username);
  return portrelay::cli::kExitUsage;
}
