// What a reload would change: restart-only keys are refused, chain changes are counted by
// endpoint identity. Pure functions over parsed configurations.
#include "portrelay/app/config_changes.hpp"

#include <gtest/gtest.h>

namespace portrelay {
namespace {

config::Config parse(const std::string& server, const std::string& upstreams,
                     const std::string& metrics = "enabled = false") {
  return config::parse_config(
      "[server]\n" + server + "\n" + upstreams + "\n[metrics]\n" + metrics + "\n", "t.toml");
}

std::string upstream(const std::string& name, int port, const std::string& extra = "") {
  return "[[upstream]]\nname = \"" + name + "\"\nhost = \"" + name +
         ".example\"\nport = " + std::to_string(port) + "\n" + extra + "\n";
}

TEST(ConfigChanges, ListenerAndMetricsAddressesNeedARestartOtherKeysDoNot) {
  auto running = parse("listen = [\"127.0.0.1:2525\"]", upstream("a", 587));
  EXPECT_EQ(restart_required(running, running), std::nullopt);
  EXPECT_EQ(restart_required(running, parse("listen = [\"127.0.0.1:2525\"]\nmax_recipients = 5",
                                            upstream("b", 465))),
            std::nullopt);
  auto moved =
      restart_required(running, parse("listen = [\"127.0.0.1:2526\"]", upstream("a", 587)));
  ASSERT_TRUE(moved);
  EXPECT_NE(moved->find("server.listen changed from [127.0.0.1:2525] to [127.0.0.1:2526]"),
            std::string::npos)
      << *moved;
  EXPECT_NE(moved->find("restart"), std::string::npos) << *moved;
  auto metrics = restart_required(
      running,
      parse("listen = [\"127.0.0.1:2525\"]", upstream("a", 587), "listen = \"127.0.0.1:9999\""));
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->find("metrics changed from disabled to 127.0.0.1:9999"), std::string::npos)
      << *metrics;
}

TEST(ConfigChanges, WorkersNeedARestart) {
  auto running = parse("workers = 2", upstream("a", 587));
  EXPECT_EQ(restart_required(running, parse("workers = 2", upstream("a", 587))), std::nullopt);
  auto changed = restart_required(running, parse("workers = 3", upstream("a", 587)));
  ASSERT_TRUE(changed);
  EXPECT_NE(changed->find("server.workers changed from 2 to 3"), std::string::npos) << *changed;
}

TEST(ConfigChanges, ChainComparedByIdentity) {
  auto running = parse("", upstream("a", 587) + upstream("b", 587) + upstream("c", 25));
  auto next =
      parse("", upstream("b", 587) + upstream("a", 587, "username = \"u\"\npassword = \"p\"") +
                    upstream("d", 465));
  auto changes = compare_chains(running.chain, next.chain);
  EXPECT_EQ(changes.endpoints, 3u);
  EXPECT_EQ(changes.added, 1u);      // d
  EXPECT_EQ(changes.removed, 1u);    // c
  EXPECT_EQ(changes.changed, 1u);    // a: credentials
  EXPECT_EQ(changes.unchanged, 1u);  // b
  EXPECT_TRUE(changes.reordered);
  auto same = compare_chains(running.chain, running.chain);
  EXPECT_EQ(same.unchanged, 3u);
  EXPECT_FALSE(same.reordered);
}

}  // namespace
}  // namespace portrelay
