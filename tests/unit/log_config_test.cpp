// [log] level and format: defaults, every accepted value, and errors positioned at the key.
#include <gtest/gtest.h>

#include <string>

#include "portrelay/config/config.hpp"

namespace portrelay::config {
namespace {

constexpr const char* kUpstream = "[[upstream]]\nhost = \"smtp.example.com\"\nport = 587\n";

Config parse(const std::string& log_keys) {
  return parse_config("[log]\n" + log_keys + kUpstream, "portrelay.toml");
}

std::string error_of(const std::string& log_keys) {
  try {
    parse(log_keys);
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(LogConfig, DefaultsAreInfoAndLogfmt) {
  Config config = parse_config(kUpstream, "portrelay.toml");
  EXPECT_EQ(config.log.level, log::Level::Info);
  EXPECT_EQ(config.log.format, log::Format::Logfmt);
  EXPECT_EQ(parse("").log.level, log::Level::Info);
}

TEST(LogConfig, EveryLevelAndFormat) {
  EXPECT_EQ(parse("level = \"debug\"\n").log.level, log::Level::Debug);
  EXPECT_EQ(parse("level = \"info\"\n").log.level, log::Level::Info);
  EXPECT_EQ(parse("level = \"warn\"\n").log.level, log::Level::Warn);
  EXPECT_EQ(parse("level = \"error\"\n").log.level, log::Level::Error);
  EXPECT_EQ(parse("format = \"json\"\n").log.format, log::Format::Json);
  EXPECT_EQ(parse("format = \"logfmt\"\n").log.format, log::Format::Logfmt);
}

TEST(LogConfig, ErrorsPointAtTheValue) {
  EXPECT_EQ(error_of("level = \"warning\"\n"),
            "portrelay.toml:2:9: log.level: \"warning\" is not a log level (write \"debug\", "
            "\"info\", \"warn\" or \"error\")");
  EXPECT_EQ(error_of("format = \"text\"\n"),
            "portrelay.toml:2:10: log.format: \"text\" is not a log format (write \"logfmt\" or "
            "\"json\")");
  EXPECT_EQ(error_of("level = 3\n").rfind("portrelay.toml:2:9: log.level: ", 0), 0u)
      << error_of("level = 3\n");
  EXPECT_EQ(error_of("levle = \"info\"\n").rfind("portrelay.toml:2:1: ", 0), 0u)
      << error_of("levle = \"info\"\n");
  EXPECT_NE(error_of("levle = \"info\"\n").find("did you mean"), std::string::npos)
      << error_of("levle = \"info\"\n");
}

TEST(LogConfig, MisspelledTableIsSuggested) {
  const std::string error = [] {
    try {
      parse_config(std::string("[logs]\nlevel = \"info\"\n") + kUpstream, "portrelay.toml");
    } catch (const ConfigError& error) {
      return std::string(error.what());
    }
    return std::string("(no error)");
  }();
  EXPECT_EQ(error, "portrelay.toml:1:2: unknown table [logs]; did you mean [log]?");
}

}  // namespace
}  // namespace portrelay::config
