// [relay] probe_interval: default, "0s" (off), the range, errors at the key (file:line:col).
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

}  // namespace
}  // namespace portrelay::config
