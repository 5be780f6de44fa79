// IdleSet (the upstream pool's bookkeeping) under a fake clock: newest first, the cap per
// endpoint, expiry in order, unusable items dropped when met.
#include "portrelay/relay/idle_set.hpp"

#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace portrelay::relay
