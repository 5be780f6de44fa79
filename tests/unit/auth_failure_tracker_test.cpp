#include "portrelay/server/auth_failure_tracker.hpp"

#include <gtest/gtest.h>

namespace portrelay::server {
namespace {

using namespace std::chrono_literals;
using Clock = AuthFailureTracker::Clock;

TEST(AuthFailureTracker, DelayDoublesPerFailureUpToTheCap) {
  AuthFailureTracker tracker({1s, 3, 15min, 100});
  const auto t0 = Clock::time_point{} + 1h;
  EXPECT_EQ(tracker.record_failure("192.0.2.1", t0), 1s);
  EXPECT_EQ(tracker.record_failure("192.0.2.1", t0 + 1s), 2s);
  EXPECT_EQ(tracker.record_failure("192.0.2.1", t0 + 2s), 4s);
  EXPECT_EQ(tracker.record_failure("192.0.2.1", t0 + 3s), 8s);
  EXPECT_EQ(tracker.record_failure("192.0.2.1", t0 + 4s), 8s) << "capped";
  EXPECT_EQ(tracker.failures("192.0.2.1", t0 + 4s), 5u);
  // Another address is independent.
  EXPECT_EQ(tracker.record_failure("192.0.2.2", t0 + 4s), 1s);
}

TEST(AuthFailureTracker, CurrentDelayDoesNotCountAFailure) {
  AuthFailureTracker tracker({1s, 3, 15min, 100});
  const auto t0 = Clock::time_point{} + 1h;
  EXPECT_EQ(tracker.current_delay("a", t0), 0ms) << "a clean record waits for nothing";
  tracker.record_failure("a", t0);
  tracker.record_failure("a", t0);
  EXPECT_EQ(tracker.current_delay("a", t0), 2s);
  EXPECT_EQ(tracker.current_delay("a", t0), 2s);
  EXPECT_EQ(tracker.failures("a", t0), 2u);
}

TEST(AuthFailureTracker, QuietAddressesAreForgotten) {
  AuthFailureTracker tracker({100ms, 3, 15min, 100});
  const auto t0 = Clock::time_point{} + 1h;
  tracker.record_failure("a", t0);
  tracker.record_failure("a", t0 + 1min);
  EXPECT_EQ(tracker.failures("a", t0 + 16min - 1ms), 2u);
  EXPECT_EQ(tracker.failures("a", t0 + 16min), 0u);
  EXPECT_EQ(tracker.record_failure("a", t0 + 16min), 100ms) << "starts over";
}

TEST(AuthFailureTracker, MemoryIsBoundedAndTheStalestAddressGoesFirst) {
  AuthFailureTracker tracker({1s, 3, 15min, 3});
  const auto t0 = Clock::time_point{} + 1h;
  tracker.record_failure("old", t0);
  tracker.record_failure("old", t0);
  tracker.record_failure("mid", t0 + 1s);
  tracker.record_failure("new", t0 + 2s);
  tracker.record_failure("newest", t0 + 3s);
  EXPECT_EQ(tracker.addresses(), 3u);
  EXPECT_EQ(tracker.failures("old", t0 + 3s), 0u);
  EXPECT_EQ(tracker.failures("mid", t0 + 3s), 1u);
  for (int i = 0; i < 10000; ++i) tracker.record_failure("flood" + std::to_string(i), t0 + 4s);
  EXPECT_EQ(tracker.addresses(), 3u);
}

}  // namespace
}  // namespace portrelay::server
