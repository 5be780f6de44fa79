// HealthStatus: /healthz and /readyz answers from the loop's beats, with a fake time base.
#include "portrelay/app/health_status.hpp"

#include <gtest/gtest.h>

namespace portrelay {
namespace {

using namespace std::chrono_literals;
const HealthStatus::Clock::time_point kT0 = HealthStatus::Clock::time_point{} + 100h;

TEST(HealthStatus, NothingIsHealthyBeforeTheFirstBeat) {
  HealthStatus status(5s);
  EXPECT_EQ(status.liveness(kT0).status, 503);
  EXPECT_EQ(status.readiness(kT0).status, 503);
  EXPECT_EQ(status.liveness(kT0).body, "event loop has not started\n");
}

TEST(HealthStatus, LiveUntilTheDeadlinePassesWithoutABeat) {
  HealthStatus status(5s);
  status.beat(kT0, std::nullopt);
  EXPECT_EQ(status.liveness(kT0 + 5s).status, 200);
  EXPECT_EQ(status.liveness(kT0 + 5s).body, "ok\n");
  auto stale = status.liveness(kT0 + 5001ms);
  EXPECT_EQ(stale.status, 503);
  EXPECT_EQ(stale.body, "event loop has not answered for 5001 ms\n");
  EXPECT_EQ(status.readiness(kT0 + 6s).status, 503) << "a stuck loop is not ready either";
  status.beat(kT0 + 6s, std::nullopt);
  EXPECT_EQ(status.liveness(kT0 + 6s).status, 200);
}

TEST(HealthStatus, ReadinessSaysWhyNot) {
  HealthStatus status(5s);
  status.beat(kT0, "no upstream endpoint is usable");
  EXPECT_EQ(status.liveness(kT0).status, 200);
  auto answer = status.readiness(kT0);
  EXPECT_EQ(answer.status, 503);
  EXPECT_EQ(answer.body, "no upstream endpoint is usable\n");
  status.beat(kT0 + 1s, std::nullopt);
  EXPECT_EQ(status.readiness(kT0 + 1s).status, 200);
  EXPECT_EQ(status.readiness(kT0 + 1s).body, "ready\n");
}

}  // namespace
}  // namespace portrelay
