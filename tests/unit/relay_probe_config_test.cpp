// [relay] probe_interval (default, "0s" = off, the range) and recovery_probe_min / _max
// (defaults, durations): errors point at the key that is wrong (file:line:col).
#include <gtest/gtest.h>

#include <string>

#include "portrelay/config/config.hpp"
#include "portrelay/relay/racing_selector.hpp"

namespace portrelay::config {
namespace {

using namespace std::chrono_literals;

constexpr const char* kUpstream = "[[upstream]]\nhost = \"smtp.example.com\"\nport = 587\n";

Config parse(const std::string& relay_keys) {
  return parse_config("[relay]\n" + relay_keys + kUpstream, "portrelay.toml");
}

std::string error_of(const std::string& relay_keys) {
  try {
    parse(relay_keys);
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(RelayProbeIntervalConfig, DefaultIsOneMinute) {
  EXPECT_EQ(parse("").relay.probe_interval, 60s);
  EXPECT_EQ(relay::RacingOptions::from(parse("").relay).refresh_interval, 60s);
}

TEST(RelayProbeIntervalConfig, ValueReachesTheSelectorOptions) {
  Config config = parse("probe_interval = \"15s\"\n");
  EXPECT_EQ(config.relay.probe_interval, 15s);
  EXPECT_EQ(relay::RacingOptions::from(config.relay).refresh_interval, 15s);
  EXPECT_EQ(parse("probe_interval = \"1s\"\n").relay.probe_interval, 1s);
  EXPECT_EQ(parse("probe_interval = \"1h\"\n").relay.probe_interval, 1h);
}

TEST(RelayProbeIntervalConfig, ZeroTurnsProbingOff) {
  EXPECT_EQ(parse("probe_interval = \"0s\"\n").relay.probe_interval, 0s);
}

TEST(RelayProbeIntervalConfig, OutOfRangeIsRefusedAtTheValue) {
  const std::string expected_tail =
      " is out of range (must be \"0s\" to turn probing off, or between \"1s\" and \"1h\")";
  EXPECT_EQ(error_of("probe_interval = \"500ms\"\n"),
            "portrelay.toml:2:18: relay.probe_interval: \"500ms\"" + expected_tail);
  EXPECT_EQ(error_of("stagger = \"1s\"\nprobe_interval = \"2h\"\n"),
            "portrelay.toml:3:18: relay.probe_interval: \"2h\"" + expected_tail);
}

TEST(RelayProbeIntervalConfig, NotADurationIsRefused) {
  EXPECT_EQ(error_of("probe_interval = 60\n"),
            "portrelay.toml:2:18: relay.probe_interval: expected a duration string, got "
            "integer (use units like \"250ms\", \"10s\", \"5m\")");
}

TEST(RelayRecoveryConfig, DefaultsAreOneSecondAndTenSeconds) {
  Config config = parse("");
  EXPECT_EQ(config.relay.recovery_probe_min, 1s);
  EXPECT_EQ(config.relay.recovery_probe_max, 10s);
}

TEST(RelayRecoveryConfig, ValuesReachTheSelectorOptions) {
  Config config = parse("recovery_probe_min = \"500ms\"\nrecovery_probe_max = \"1m\"\n");
  EXPECT_EQ(config.relay.recovery_probe_min, 500ms);
  EXPECT_EQ(config.relay.recovery_probe_max, 60s);
  auto options = relay::RacingOptions::from(config.relay);
  EXPECT_EQ(options.recovery_probe_min, 500ms);
  EXPECT_EQ(options.recovery_probe_max, 60s);
}

TEST(RelayRecoveryConfig, EqualMinAndMaxIsAFixedInterval) {
  Config config = parse("recovery_probe_min = \"3s\"\nrecovery_probe_max = \"3s\"\n");
  EXPECT_EQ(config.relay.recovery_probe_min, 3s);
  EXPECT_EQ(config.relay.recovery_probe_max, 3s);
}

TEST(RelayRecoveryConfig, ZeroIsRefusedAtTheKey) {
  EXPECT_EQ(error_of("recovery_probe_min = \"0s\"\n"),
            "portrelay.toml:2:22: relay.recovery_probe_min: must be greater than 0");
  EXPECT_EQ(error_of("recovery_probe_max = \"0s\"\n"),
            "portrelay.toml:2:22: relay.recovery_probe_max: must be greater than 0");
}

TEST(RelayRecoveryConfig, MaxShorterThanMinPointsAtMax) {
  EXPECT_EQ(error_of("recovery_probe_min = \"5s\"\nrecovery_probe_max = \"2s\"\n"),
            "portrelay.toml:3:22: relay.recovery_probe_max: must not be shorter than "
            "relay.recovery_probe_min");
}

TEST(RelayRecoveryConfig, MinAboveTheDefaultMaxPointsAtMin) {
  EXPECT_EQ(error_of("recovery_probe_min = \"20s\"\n"),
            "portrelay.toml:2:22: relay.recovery_probe_min: is longer than "
            "relay.recovery_probe_max (10s by default); set recovery_probe_max too");
}

TEST(RelayRecoveryConfig, NotADurationIsRefused) {
  std::string error = error_of("recovery_probe_min = 5\n");
  EXPECT_EQ(error.rfind("portrelay.toml:2:22: relay.recovery_probe_min:", 0), 0u) << error;
}

}  // namespace
}  // namespace portrelay::config
