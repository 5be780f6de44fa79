// [server] workers: how many event loops accept and relay client sessions.
#include <gtest/gtest.h>

#include <string>
#include <thread>

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

TEST(ConfigWorkers, DefaultIsOneLessThanTheCoresFromOneToEight) {
  const unsigned cores = std::thread::hardware_concurrency();
  const std::size_t expected = cores <= 2 ? 1 : (cores - 1 > 8 ? 8 : cores - 1);
  EXPECT_EQ(portrelay::config::default_workers(), expected);
  EXPECT_EQ(parse("").server.workers, expected);
}

TEST(ConfigWorkers, ExplicitValueInRange) {
  EXPECT_EQ(parse("workers = 1\n").server.workers, 1u);
  EXPECT_EQ(parse("workers = 64\n").server.workers, 64u);
}

TEST(ConfigWorkers, OutOfRangeOrWrongTypeIsAnErrorWithItsPosition) {
  EXPECT_NE(error_of("workers = 0\n").find("portrelay.toml:2:11: server.workers"),
            std::string::npos)
      << error_of("workers = 0\n");
  EXPECT_NE(error_of("workers = 65\n").find("portrelay.toml:2:11: server.workers"),
            std::string::npos)
      << error_of("workers = 65\n");
  EXPECT_NE(error_of("workers = \"4\"\n").find("portrelay.toml:2:11: server.workers"),
            std::string::npos)
      << error_of("workers = \"4\"\n");
}

}  // namespace
