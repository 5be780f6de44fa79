// relay::EndpointSizes: each endpoint's EHLO SIZE, which endpoints a message skips, and the
// largest message the chain takes (portrelay's own SIZE), across a reload.
#include "portrelay/relay/endpoint_sizes.hpp"

#include <gtest/gtest.h>

namespace portrelay::relay {
namespace {

EndpointIdentity id(std::string host, std::uint16_t port) {
  return EndpointIdentity{std::move(host), port, TlsMode::StartTls};
}

TEST(EndpointSizes, UnknownUntilAHandshakeSaysAndZeroMeansNoLimit) {
  EndpointSizes sizes({id("a", 587), id("b", 587)});
  EXPECT_EQ(sizes.limit(0), std::nullopt);
  EXPECT_FALSE(sizes.too_small(0, 1ull << 40));  // never seen: tried
  sizes.learned(0, 10'000);
  sizes.learned(1, 0);
  EXPECT_EQ(sizes.limit(0), std::optional<std::uint64_t>(10'000));
  EXPECT_EQ(sizes.limit(1), std::optional<std::uint64_t>(0));
  EXPECT_FALSE(sizes.too_small(0, 10'000));
  EXPECT_TRUE(sizes.too_small(0, 10'001));
  EXPECT_FALSE(sizes.too_small(1, 1ull << 40));
}

TEST(EndpointSizes, TheLargestIsTheBiggestEndpointsBoundedByTheConfiguredLimit) {
  EndpointSizes sizes({id("a", 587), id("b", 465)});
  // Nothing known yet: the configured limit.
  EXPECT_EQ(sizes.largest(25'000), 25'000u);
  sizes.learned(0, 10'000);
  EXPECT_EQ(sizes.largest(25'000), 25'000u) << "b is not known yet: it may take anything";
  sizes.learned(1, 15'000);
  EXPECT_EQ(sizes.largest(25'000), 15'000u);
  EXPECT_EQ(sizes.largest(12'000), 12'000u);
  sizes.learned(0, 0);  // a later EHLO without a limit
  EXPECT_EQ(sizes.largest(25'000), 25'000u);
}

TEST(EndpointSizes, EndpointsWithOneIdentityShareWhatTheyAnnounced) {
  EndpointSizes sizes({id("a", 587), id("a", 587), id("c", 25)});
  sizes.learned(1, 5'000);
  EXPECT_EQ(sizes.limit(0), std::optional<std::uint64_t>(5'000));
  EXPECT_EQ(sizes.limit(2), std::nullopt);
}

TEST(EndpointSizes, AReloadKeepsTheSizesOfTheEndpointsItKeeps) {
  EndpointSizes old({id("a", 587), id("b", 587)});
  old.learned(0, 1'000);
  old.learned(1, 2'000);
  EndpointSizes next({id("b", 587), id("new", 25)});
  next.inherit(old);
  EXPECT_EQ(next.limit(0), std::optional<std::uint64_t>(2'000));
  EXPECT_EQ(next.limit(1), std::nullopt);
  EXPECT_EQ(next.largest(25'000), 25'000u);
}

}  // namespace
}  // namespace portrelay::relay
