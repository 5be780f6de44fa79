// Per-endpoint series are found by the endpoint's labels (name, port), not by its position
// in one chain, so a reload that reorders or extends the chain counts into the right series.
#include <gtest/gtest.h>

#include "portrelay/metrics/metrics.hpp"

namespace portrelay::metrics {
namespace {

config::Endpoint endpoint(std::size_t index, const std::string& name, std::uint16_t port) {
  config::Endpoint e;
  e.index = index;
  e.name = name;
  e.host = name + ".example";
  e.port = port;
  return e;
}

std::string attempts_line(const std::string& name, std::uint16_t port, int value) {
  return "portrelay_upstream_connect_attempts_total{port=\"" + std::to_string(port) +
         "\",upstream=\"" + name + "\"} " + std::to_string(value) + "\n";
}

TEST(MetricsSeries, ReloadedChainCountsByNameAndPortAndNewSeriesStartAtZero) {
  Metrics metrics({endpoint(0, "a", 587), endpoint(1, "b", 25)}, "test");
  metrics.connect_attempt(endpoint(1, "b", 25));
  // The reload: b first now, a gone from the chain, c added.
  metrics.add_endpoints({endpoint(0, "b", 25), endpoint(1, "c", 465)});
  std::string text = metrics.serialize();
  EXPECT_NE(text.find(attempts_line("c", 465, 0)), std::string::npos) << text;
  metrics.connect_attempt(endpoint(0, "b", 25));
  metrics.connect_attempt(endpoint(1, "c", 465));
  metrics.pool_idle(endpoint(1, "c", 465), 2);
  text = metrics.serialize();
  EXPECT_NE(text.find(attempts_line("a", 587, 0)), std::string::npos) << text;
  EXPECT_NE(text.find(attempts_line("b", 25, 2)), std::string::npos) << text;
  EXPECT_NE(text.find(attempts_line("c", 465, 1)), std::string::npos) << text;
  EXPECT_NE(text.find("portrelay_upstream_pool_idle_connections{port=\"465\",upstream=\"c\"} 2"),
            std::string::npos)
      << text;
}

TEST(MetricsSeries, ReloadOutcomeIsExported) {
  Metrics metrics({endpoint(0, "a", 587)}, "test");
  metrics.config_reload(false, 1700000000);
  std::string text = metrics.serialize();
  EXPECT_NE(text.find("portrelay_config_last_reload_success 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("portrelay_config_last_reload_timestamp_seconds 1700000000\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace portrelay::metrics
