// [relay]: how the relay talks to the upstream chain.
#include <string>

#include "sections.hpp"
#include "value_checks.hpp"

namespace portrelay::config::detail {
namespace {

// Below 10ms racing degenerates into opening every endpoint at once; above 2s a blocked
// preferred port costs every message a noticeable delay.
constexpr Duration kMinStagger{10};
constexpr Duration kMaxStagger{2000};
constexpr std::int64_t kMaxParallel = 16;
// Health refresh: more often than every second is a probe storm on the provider; less often
// than hourly leaves `portrelay_upstream_up` too stale to alert on.
constexpr Duration kMinProbeInterval = std::chrono::seconds(1);
constexpr Duration kMaxProbeInterval = std::chrono::hours(1);
constexpr std::int64_t kMaxPoolPerEndpoint = 256;

RelayMode read_mode(const TableReader& reader) {
  const auto mode = reader.string("mode");
  if (!mode || *mode == "passthrough") return RelayMode::Passthrough;
  if (*mode == "spool") return RelayMode::Spool;
  reader.fail("mode", *reader.find("mode"),
              "\"" + *mode + "\" is not a relay mode (\"passthrough\" or \"spool\")");
}

}  // namespace

RelayConfig parse_relay_section(ParseContext& context, const toml::table& table,
                                const ServerConfig& server) {
  const TableReader reader(context, table, "relay", "[relay]",
                           {"mode",
                            "resolve_timeout",
                            "connect_timeout",
                            "greeting_timeout",
                            "handshake_timeout",
                            "command_timeout",
                            "pool_check_timeout",
                            "pool_check_after",
                            "data_timeout",
                            "stagger",
                            "max_parallel",
                            "helo_name",
                            "cooldown",
                            "cooldown_max",
                            "recovery_probe_min",
                            "recovery_probe_max",
                            "probe_interval",
                            "pool_idle_timeout",
                            "pool_max_per_endpoint",
                            "spool_on_failure",
                            "require_route",
                            "max_limit_wait",
                            "throttle_backoff",
                            "throttle_backoff_max",
                            "quota_backoff",
                            "max_consecutive_refusals"});
  RelayConfig relay;
  relay.mode = read_mode(reader);
  relay.connect_timeout = reader.timeout("connect_timeout", relay.connect_timeout);
  relay.greeting_timeout = reader.timeout("greeting_timeout", relay.greeting_timeout);
  // Each of these once shared a neighbour's key; unset, they still follow it.
  relay.resolve_timeout = reader.timeout("resolve_timeout", relay.connect_timeout);
  relay.handshake_timeout = reader.timeout("handshake_timeout", relay.greeting_timeout);
  relay.pool_check_timeout = reader.timeout("pool_check_timeout", relay.connect_timeout);
  relay.command_timeout = reader.timeout("command_timeout", relay.command_timeout);
  if (const auto after = reader.duration("pool_check_after")) {
    if (*after > std::chrono::hours(1))
      reader.fail("pool_check_after", *reader.find("pool_check_after"),
                  "\"" + reader.string("pool_check_after").value() +
                      "\" is out of range (must be between \"0s\" and \"1h\")");
    relay.pool_check_after = *after;
  }
  relay.data_timeout = reader.timeout("data_timeout", relay.data_timeout);

  if (const auto stagger = reader.duration("stagger")) {
    if (*stagger < kMinStagger || *stagger > kMaxStagger) {
      reader.fail("stagger", *reader.find("stagger"),
                  "\"" + reader.string("stagger").value() +
                      "\" is out of range (must be between \"10ms\" and \"2s\")");
    }
    relay.stagger = *stagger;
  }
  relay.max_parallel = static_cast<std::size_t>(
      reader.bounded_integer("max_parallel", relay.max_parallel, 1, kMaxParallel));

  reader.timeout_range("cooldown", relay.cooldown, "cooldown_max", relay.cooldown_max);
  reader.timeout_range("recovery_probe_min", relay.recovery_probe_min, "recovery_probe_max",
                       relay.recovery_probe_max);
  if (const auto interval = reader.duration("probe_interval")) {
    if (*interval != Duration::zero() &&
        (*interval < kMinProbeInterval || *interval > kMaxProbeInterval)) {
      reader.fail("probe_interval", *reader.find("probe_interval"),
                  "\"" + reader.string("probe_interval").value() +
                      "\" is out of range (must be \"0s\" to turn probing off, or between "
                      "\"1s\" and \"1h\")");
    }
    relay.probe_interval = *interval;
  }
  relay.pool_idle_timeout = reader.timeout("pool_idle_timeout", relay.pool_idle_timeout);
  relay.pool_max_per_endpoint = static_cast<std::size_t>(reader.bounded_integer(
      "pool_max_per_endpoint", relay.pool_max_per_endpoint, 0, kMaxPoolPerEndpoint));

  relay.spool_on_failure = reader.boolean("spool_on_failure").value_or(relay.spool_on_failure);
  if (relay.spool_on_failure && relay.mode == RelayMode::Spool) {
    reader.warn("spool_on_failure", *reader.find("spool_on_failure"),
                "has no effect with mode = \"spool\" (every message is queued)");
  }

  relay.require_route = reader.boolean("require_route").value_or(relay.require_route);
  if (const auto wait = reader.duration("max_limit_wait")) relay.max_limit_wait = *wait;
  reader.timeout_range("throttle_backoff", relay.throttle_backoff, "throttle_backoff_max",
                       relay.throttle_backoff_max);
  relay.quota_backoff = reader.timeout("quota_backoff", relay.quota_backoff);
  relay.max_consecutive_refusals =
      static_cast<std::size_t>(reader.bounded_integer("max_consecutive_refusals", 3, 0, 1000));

  relay.helo_name = reader.string("helo_name").value_or(server.hostname);
  if (!is_valid_hostname(relay.helo_name)) {
    reader.fail(
        "helo_name", *reader.find("helo_name"),
        "\"" + relay.helo_name + "\" is not a valid hostname (letters, digits, '-' and '.')");
  }
  return relay;
}

}  // namespace portrelay::config::detail
