// Where commands look for their configuration: --config (or sendmail's -C), then
// PORTRELAY_CONFIG, then the packaged default.
#include "portrelay/cli/config_path.hpp"

#include <gtest/gtest.h>

namespace {

using portrelay::cli::choose_config_path;
using portrelay::cli::kDefaultConfigPath;

TEST(ConfigPath, ExplicitPathWinsOverEnvironment) {
  EXPECT_EQ(choose_config_path("/tmp/a.toml", "/tmp/env.toml"), "/tmp/a.toml");
}

TEST(ConfigPath, EnvironmentWhenNoExplicitPath) {
  EXPECT_EQ(choose_config_path("", "/tmp/env.toml"), "/tmp/env.toml");
}

TEST(ConfigPath, DefaultWhenNeitherIsGiven) {
  EXPECT_EQ(choose_config_path("", nullptr), kDefaultConfigPath);
  EXPECT_EQ(kDefaultConfigPath, "/etc/portrelay/portrelay.toml");
}

TEST(ConfigPath, EmptyEnvironmentValueCountsAsUnset) {
  // `PORTRELAY_CONFIG= portrelay check` must not try to open "".
  EXPECT_EQ(choose_config_path("", ""), kDefaultConfigPath);
}

}  // namespace
