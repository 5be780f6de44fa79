// [relay] recovery_probe_min / recovery_probe_max: defaults, durations, and errors that
// point at the key that is wrong (file:line:col).
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
