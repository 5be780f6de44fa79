// Per-upstream limits and the [relay] keys of issue #18 (docs/CONFIGURATION.md).
#include <gtest/gtest.h>

#include <string>

#include "portrelay/config/config.hpp"

namespace {

using namespace std::chrono_literals;
using portrelay::config::Config;
using portrelay::config::ConfigError;
using portrelay::config::parse_config;

Config parse(const std::string& text) { return parse_config(text, "portrelay.toml"); }

std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "(no error)";
}

const std::string kUpstream = "[[upstream]]\nname = \"acct\"\nhost = \"127.0.0.1\"\nport = 2525\n";

TEST(ConfigUpstreamLimits, NoneByDefault) {
  const Config config = parse(kUpstream);
  ASSERT_EQ(config.upstreams.size(), 1u);
  EXPECT_FALSE(config.upstreams[0].limits.any());
  EXPECT_EQ(config.relay.max_limit_wait, 5s);
  EXPECT_EQ(config.relay.throttle_backoff, 60s);
  EXPECT_EQ(config.relay.throttle_backoff_max, 10min);
  EXPECT_EQ(config.relay.quota_backoff, 1h);
  EXPECT_EQ(config.relay.max_consecutive_refusals, 3u);
}

TEST(ConfigUpstreamLimits, EveryKeyOnTheFirstTableOfAName) {
  const Config config = parse(
      kUpstream +
      "max_connections = 3\nmax_message_rate = \"30/min\"\nmax_message_burst = 2\n"
      "max_messages_per_connection = 5000\nmax_recipients_per_day = 10000\n"
      "max_message_size = \"10MB\"\nthrottle_patterns = [\"Slow Down\"]\nquota_patterns = []\n"
      "[[upstream]]\nname = \"acct\"\nhost = \"127.0.0.1\"\nport = 2526\n"
      "[relay]\nmax_limit_wait = \"2s\"\nthrottle_backoff = \"30s\"\nthrottle_backoff_max = "
      "\"5m\"\nquota_backoff = \"2h\"\nmax_consecutive_refusals = 0\n");
  ASSERT_EQ(config.upstreams.size(), 1u);
  const auto& limits = config.upstreams[0].limits;
  EXPECT_EQ(limits.max_connections, 3u);
  EXPECT_DOUBLE_EQ(limits.max_message_rate, 0.5);
  EXPECT_EQ(limits.max_message_rate_text, "30/min");
  EXPECT_EQ(limits.max_message_burst, 2u);
  EXPECT_EQ(limits.max_messages_per_connection, 5000u);
  EXPECT_EQ(limits.max_recipients_per_day, 10000u);
  EXPECT_EQ(limits.max_message_size, 10000000u);
  EXPECT_EQ(limits.throttle_patterns, std::vector<std::string>({"slow down"}));
  EXPECT_TRUE(limits.quota_patterns.empty());
  EXPECT_EQ(config.relay.max_limit_wait, 2s);
  EXPECT_EQ(config.relay.throttle_backoff, 30s);
  EXPECT_EQ(config.relay.throttle_backoff_max, 5min);
  EXPECT_EQ(config.relay.quota_backoff, 2h);
  EXPECT_EQ(config.relay.max_consecutive_refusals, 0u);
}

TEST(ConfigUpstreamLimits, RatesInEveryUnit) {
  for (const auto& [text, per_second] : std::vector<std::pair<std::string, double>>{
           {"14/s", 14}, {"30/min", 0.5}, {"30/m", 0.5}, {"3600/h", 1}, {"86400/d", 1}}) {
    const Config config = parse(kUpstream + "max_message_rate = \"" + text + "\"\n");
    EXPECT_DOUBLE_EQ(config.upstreams[0].limits.max_message_rate, per_second) << text;
  }
}

TEST(ConfigUpstreamLimits, ErrorsSayWhatIsWrong) {
  EXPECT_EQ(error_of(kUpstream + "max_message_rate = \"14 per second\"\n"),
            "portrelay.toml:5:20: upstream.max_message_rate: \"14 per second\" is not a rate "
            "(write \"14/s\", \"30/min\" or \"500/h\")");
  EXPECT_NE(error_of(kUpstream + "max_message_rate = \"0/s\"\n").find("is not a rate"),
            std::string::npos);
  EXPECT_NE(error_of(kUpstream + "throttle_patterns = [\"\"]\n").find("matches every reply"),
            std::string::npos);
  EXPECT_NE(error_of(kUpstream + "max_connections = -1\n"), "(no error)");
  // An account's limits belong on its first table.
  EXPECT_EQ(error_of(kUpstream + "[[upstream]]\nname = \"acct\"\nhost = \"127.0.0.1\"\n"
                                 "port = 2526\nmax_connections = 2\n"),
            "portrelay.toml:5:1: upstream: limits of \"acct\" (max_connections, "
            "max_message_rate, ...) belong on its first [[upstream]] table, at line 1");
  EXPECT_NE(error_of(kUpstream + "[relay]\nthrottle_backoff = \"20m\"\n").find("longer than"),
            std::string::npos);
}

// The presets carry the providers' documented figures (provider_presets.cpp cites them);
// the operator's own keys override them.
TEST(ConfigUpstreamLimits, PresetsCarryTheDocumentedLimits) {
  const Config config = parse(
      "[[upstream]]\nprovider = \"ses\"\nregion = \"us-east-1\"\n"
      "[[upstream]]\nprovider = \"microsoft365\"\n"
      "[[upstream]]\nprovider = \"gmail\"\n"
      "[[upstream]]\nprovider = \"postmark\"\n"
      "[[upstream]]\nprovider = \"sendgrid\"\n");
  ASSERT_EQ(config.upstreams.size(), 5u);
  EXPECT_DOUBLE_EQ(config.upstreams[0].limits.max_message_rate, 14);
  EXPECT_EQ(config.upstreams[1].limits.max_connections, 3u);
  EXPECT_DOUBLE_EQ(config.upstreams[1].limits.max_message_rate, 0.5);
  EXPECT_EQ(config.upstreams[1].limits.max_recipients_per_day, 10000u);
  EXPECT_EQ(config.upstreams[2].limits.max_recipients_per_day, 500u);
  EXPECT_EQ(config.upstreams[3].limits.max_message_size, 10000000u);
  EXPECT_FALSE(config.upstreams[4].limits.any());
  const Config overridden = parse(
      "[[upstream]]\nprovider = \"ses\"\nregion = \"us-east-1\"\nmax_message_rate = \"50/s\"\n"
      "[[upstream]]\nprovider = \"microsoft365\"\nmax_connections = 0\n");
  EXPECT_DOUBLE_EQ(overridden.upstreams[0].limits.max_message_rate, 50);
  EXPECT_EQ(overridden.upstreams[1].limits.max_connections, 0u);
  EXPECT_DOUBLE_EQ(overridden.upstreams[1].limits.max_message_rate, 0.5);
}

}  // namespace
