// [server] trusted_networks: the clients exempt from max_sessions_per_address.
#include <gtest/gtest.h>

#include <string>

#include "portrelay/config/config.hpp"

namespace {

using portrelay::config::Config;
using portrelay::config::ConfigError;
using portrelay::config::parse_config;

constexpr const char* kUpstream = "[[upstream]]\nhost = \"smtp.example.com\"\nport = 587\n";

Config parse(const std::string& server_lines) {
  return parse_config("[server]\n" + server_lines + kUpstream, "portrelay.toml");
}

std::string error_of(const std::string& server_lines) {
  try {
    parse(server_lines);
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(ConfigTrustedNetworks, DefaultIsLoopback) {
  const Config config = parse("");
  ASSERT_EQ(config.server.trusted_networks.size(), 2u);
  EXPECT_EQ(config.server.trusted_networks[0].str(), "127.0.0.0/8");
  EXPECT_EQ(config.server.trusted_networks[1].str(), "::1/128");
  EXPECT_EQ(config.server.max_sessions_per_address, 100u);
}

TEST(ConfigTrustedNetworks, AListReplacesTheDefault) {
  const Config config = parse("trusted_networks = [\"10.0.0.0/8\", \"fd00::/8\"]\n");
  ASSERT_EQ(config.server.trusted_networks.size(), 2u);
  EXPECT_EQ(config.server.trusted_networks[0].str(), "10.0.0.0/8");
  EXPECT_EQ(config.server.trusted_networks[1].str(), "fd00::/8");
  EXPECT_TRUE(config.warnings.empty());
  // An empty list holds loopback to the per-address limit too.
  EXPECT_TRUE(parse("trusted_networks = []\n").server.trusted_networks.empty());
}

TEST(ConfigTrustedNetworks, BadEntriesAreErrorsWithTheirPosition) {
  EXPECT_EQ(error_of("trusted_networks = [\"127.0.0.1\", \"10.0.0.0/33\"]\n"),
            "portrelay.toml:2:34: server.trusted_networks: \"10.0.0.0/33\" is not a network in "
            "CIDR notation (like \"10.0.0.0/8\" or \"fd00::/8\")");
  EXPECT_EQ(error_of("trusted_networks = \"127.0.0.0/8\"\n"),
            "portrelay.toml:2:20: server.trusted_networks: expected an array of strings, got "
            "string");
}

TEST(ConfigTrustedNetworks, HostBitsAndWholeFamiliesAreWarned) {
  const Config host_bits = parse("trusted_networks = [\"10.1.2.3/8\"]\n");
  EXPECT_EQ(host_bits.server.trusted_networks.at(0).str(), "10.0.0.0/8");
  ASSERT_EQ(host_bits.warnings.size(), 1u);
  EXPECT_EQ(host_bits.warnings[0],
            "portrelay.toml:2: server.trusted_networks: \"10.1.2.3/8\" has host bits set; it "
            "means 10.0.0.0/8");
  // Allowed (a relay behind a NAT gateway may want it), but then no address has a limit.
  const Config everyone = parse("trusted_networks = [\"0.0.0.0/0\", \"::/0\"]\n");
  ASSERT_EQ(everyone.warnings.size(), 1u);
  EXPECT_EQ(everyone.warnings[0],
            "portrelay.toml:2: server.trusted_networks: exempts every address from "
            "max_sessions_per_address");
}

}  // namespace
