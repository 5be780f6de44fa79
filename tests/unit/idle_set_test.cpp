// IdleSet (the upstream pool's bookkeeping) under a fake clock: newest first, the cap per
// endpoint, expiry in order, unusable items dropped when met; and the pool's size
// following demand (a burst is kept whole, the surplus expires once demand falls).
#include "portrelay/relay/idle_set.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace portrelay::relay {
namespace {

using namespace std::chrono_literals;
using Set = IdleSet<std::string>;

struct IdleSetTest : ::testing::Test {
  Set::TimePoint now{std::chrono::hours(1)};
  Set set{2, 2, 30s};
  bool add(std::size_t endpoint, std::string item) { return set.add(endpoint, item, now); }
  std::optional<std::string> take(std::size_t endpoint) {
    std::vector<std::string> dropped;
    return set.take(
        endpoint, [](const std::string& s) { return s.rfind("dead", 0) != 0; }, dropped);
  }
};

TEST_F(IdleSetTest, TakesTheNewestUsableItemOfThatEndpoint) {
  EXPECT_TRUE(add(0, "a"));
  EXPECT_TRUE(add(0, "b"));
  EXPECT_TRUE(add(1, "x"));
  EXPECT_EQ(take(0), "b");
  EXPECT_EQ(take(0), "a");
  EXPECT_EQ(take(0), std::nullopt);
  EXPECT_EQ(take(1), "x");
}

TEST_F(IdleSetTest, KeepsAtMostMaxPerEndpoint) {
  EXPECT_TRUE(add(0, "a"));
  EXPECT_TRUE(add(0, "b"));
  std::string c = "c";
  EXPECT_FALSE(set.add(0, c, now));
  EXPECT_EQ(c, "c") << "a refused item is left with the caller";
  EXPECT_TRUE(add(1, "x")) << "the cap is per endpoint";
}

TEST_F(IdleSetTest, UnusableItemsMetOnTheWayAreDropped) {
  add(0, "a");
  add(0, "dead-b");
  std::vector<std::string> dropped;
  auto taken = set.take(
      0, [](const std::string& s) { return s.rfind("dead", 0) != 0; }, dropped);
  EXPECT_EQ(taken, "a");
  EXPECT_EQ(dropped, std::vector<std::string>{"dead-b"});
  EXPECT_EQ(set.size(0), 0u);
}

TEST_F(IdleSetTest, ItemsExpireIdleTimeoutAfterTheyWereAddedOldestFirst) {
  add(0, "a");
  now += 10s;
  add(1, "x");
  add(0, "b");
  EXPECT_EQ(set.next_expiry(), now - 10s + 30s);
  now += 19s;
  EXPECT_TRUE(set.expire(now).empty());
  now += 1s;  // "a" has been idle 30 s
  EXPECT_EQ(set.expire(now), std::vector<std::string>{"a"});
  EXPECT_EQ(set.next_expiry(), now + 10s);
  now += 10s;
  auto expired = set.expire(now);
  std::sort(expired.begin(), expired.end());
  EXPECT_EQ(expired, (std::vector<std::string>{"b", "x"}));
  EXPECT_EQ(set.next_expiry(), std::nullopt);
}

TEST_F(IdleSetTest, AZeroCapKeepsNothing) {
  Set none(1, 0, 30s);
  std::string item = "a";
  EXPECT_FALSE(none.add(0, item, now));
}

TEST_F(IdleSetTest, ClearHandsBackEverything) {
  add(0, "a");
  add(1, "x");
  EXPECT_EQ(set.clear().size(), 2u);
  EXPECT_EQ(set.next_expiry(), std::nullopt);
}

// Messages on one endpoint as the pool sees them: `concurrent` connections are taken at
// once (a new one opened for each the set cannot give), then all handed back.
struct Load {
  Set& set;
  std::size_t opened = 0;
  std::size_t refused = 0;  // handed back but not kept (the pool would say QUIT)

  void burst(std::size_t concurrent, Set::TimePoint now) {
    std::vector<std::string> in_use;
    for (std::size_t i = 0; i < concurrent; ++i) {
      std::vector<std::string> dropped;
      auto item = set.take(
          0, [](const std::string&) { return true; }, dropped);
      in_use.push_back(item ? *item : "c" + std::to_string(opened++));
    }
    for (auto& item : in_use)
      if (!set.add(0, item, now)) ++refused;
  }
};

TEST(IdleSetDemand, ABurstIsKeptWholeAndTheNextBurstOpensNothing) {
  Set::TimePoint now{std::chrono::hours(1)};
  Set set(1, 64, 30s);
  Load load{set};
  load.burst(20, now);
  EXPECT_EQ(load.opened, 20u);
  EXPECT_EQ(load.refused, 0u);
  EXPECT_EQ(set.size(0), 20u);
  now += 5s;
  EXPECT_TRUE(set.expire(now).empty());
  load.burst(20, now);
  EXPECT_EQ(load.opened, 20u) << "the second burst reuses every connection of the first";
  EXPECT_EQ(set.size(0), 20u);
}

TEST(IdleSetDemand, WhenDemandFallsTheSurplusExpiresAndTheWorkingSetStays) {
  Set::TimePoint now{std::chrono::hours(1)};
  Set set(1, 64, 30s);
  Load load{set};
  load.burst(20, now);
  const Set::TimePoint burst = now;
  // Then 2 at a time, once a second: the 2 newest connections carry all of it.
  std::size_t expired = 0;
  while (now < burst + 29s) {
    now += 1s;
    expired += set.expire(now).size();
    load.burst(2, now);
  }
  EXPECT_EQ(expired, 0u) << "a connection is kept a whole idle timeout";
  EXPECT_EQ(set.size(0), 20u);
  now = burst + 30s;
  EXPECT_EQ(set.expire(now).size(), 18u) << "the 18 the low demand never reached";
  load.burst(2, now);
  EXPECT_EQ(set.size(0), 2u);
  EXPECT_EQ(load.opened, 20u);
  // Low demand for a long time: the 2 stay, refreshed by use.
  for (int second = 0; second < 120; ++second) {
    now += 1s;
    EXPECT_TRUE(set.expire(now).empty());
    load.burst(2, now);
  }
  EXPECT_EQ(set.size(0), 2u);
  EXPECT_EQ(load.opened, 20u);
  // No demand at all: nothing is kept after an idle timeout.
  now += 30s;
  EXPECT_EQ(set.expire(now).size(), 2u);
  EXPECT_EQ(set.next_expiry(), std::nullopt);
  // The next burst of 20 opens 20 again.
  load.burst(20, now);
  EXPECT_EQ(load.opened, 40u);
}

TEST(IdleSetDemand, TheCeilingBoundsWhatABurstLeaves) {
  Set::TimePoint now{std::chrono::hours(1)};
  Set set(1, 16, 30s);
  Load load{set};
  load.burst(20, now);
  EXPECT_EQ(set.size(0), 16u);
  EXPECT_EQ(load.refused, 4u);
  now += 1s;
  load.burst(20, now);
  EXPECT_EQ(load.opened, 24u) << "each burst above the ceiling opens the difference again";
  EXPECT_EQ(load.refused, 8u);
}

}  // namespace
}  // namespace portrelay::relay
