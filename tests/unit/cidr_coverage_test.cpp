#include "portrelay/net/cidr_coverage.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using portrelay::net::Cidr;
using portrelay::net::covers_all_ipv4;
using portrelay::net::covers_all_ipv6;

std::vector<Cidr> networks(const std::vector<std::string>& texts) {
  std::vector<Cidr> out;
  for (const auto& text : texts) {
    auto network = Cidr::parse(text);
    EXPECT_TRUE(network.has_value()) << text;
    if (network) out.push_back(*network);
  }
  return out;
}

TEST(CidrCoverage, SingleWholeFamilies) {
  EXPECT_TRUE(covers_all_ipv4(networks({"0.0.0.0/0"})));
  EXPECT_FALSE(covers_all_ipv6(networks({"0.0.0.0/0"})));
  EXPECT_TRUE(covers_all_ipv6(networks({"::/0"})));
  EXPECT_TRUE(covers_all_ipv4(networks({"::/0"}))) << "IPv4 clients match as ::ffff:a.b.c.d";
  EXPECT_FALSE(covers_all_ipv4({}));
  EXPECT_FALSE(covers_all_ipv6({}));
}

TEST(CidrCoverage, MappedBlockAdmitsAllOfIpv4) {
  EXPECT_TRUE(covers_all_ipv4(networks({"::ffff:0.0.0.0/96"})));
  EXPECT_TRUE(covers_all_ipv4(networks({"::ffff:0:0/96"})));
  EXPECT_TRUE(covers_all_ipv4(networks({"::ffff:0.0.0.0/80"}))) << "host bits cleared: ::/80";
  EXPECT_TRUE(covers_all_ipv4(networks({"::/1"})));
  EXPECT_FALSE(covers_all_ipv6(networks({"::ffff:0.0.0.0/96"})));
  EXPECT_FALSE(covers_all_ipv4(networks({"8000::/1"})));
  EXPECT_FALSE(covers_all_ipv4(networks({"::fffe:0:0/96"})));
  // Half in mapped form, half plain.
  EXPECT_TRUE(covers_all_ipv4(networks({"::ffff:0.0.0.0/97", "128.0.0.0/1"})));
  EXPECT_FALSE(covers_all_ipv4(networks({"::ffff:0.0.0.0/97", "128.0.0.0/2"})));
}

TEST(CidrCoverage, UnionsOfHalvesAndQuarters) {
  EXPECT_TRUE(covers_all_ipv4(networks({"0.0.0.0/1", "128.0.0.0/1"})));
  EXPECT_TRUE(covers_all_ipv4(networks({"128.0.0.0/1", "0.0.0.0/2", "64.0.0.0/2"})));
  EXPECT_FALSE(covers_all_ipv4(networks({"0.0.0.0/1", "128.0.0.0/2"})));
  EXPECT_FALSE(covers_all_ipv4(networks({"0.0.0.0/1", "0.0.0.0/1"})));
  EXPECT_TRUE(covers_all_ipv6(networks({"::/1", "8000::/1"})));
  EXPECT_FALSE(covers_all_ipv6(networks({"::/1", "8000::/2"})));
  // Overlaps and redundancy do not matter.
  EXPECT_TRUE(covers_all_ipv4(networks({"10.0.0.0/8", "0.0.0.0/1", "128.0.0.0/1", "1.2.3.4"})));
}

TEST(CidrCoverage, AllSlash8sExceptOneIsNotEverything) {
  std::vector<std::string> texts;
  for (int i = 0; i < 256; ++i)
    if (i != 77) texts.push_back(std::to_string(i) + ".0.0.0/8");
  EXPECT_FALSE(covers_all_ipv4(networks(texts)));
  texts.push_back("77.0.0.0/9");
  EXPECT_FALSE(covers_all_ipv4(networks(texts)));
  texts.push_back("77.128.0.0/9");
  EXPECT_TRUE(covers_all_ipv4(networks(texts)));
}

TEST(CidrCoverage, HostRoutesAtTheDeepestLevel) {
  // 255.255.255.254/31 split into its two hosts, plus everything else.
  std::vector<std::string> texts = {"255.255.255.255", "255.255.255.254"};
  for (unsigned bits = 1; bits <= 31; ++bits) {
    // The block of length `bits` that starts with bits-1 ones and a zero.
    std::uint32_t value = bits == 1 ? 0 : (~0u << (33 - bits));
    std::string text = std::to_string(value >> 24) + "." + std::to_string((value >> 16) & 255) +
                       "." + std::to_string((value >> 8) & 255) + "." +
                       std::to_string(value & 255) + "/" + std::to_string(bits);
    texts.push_back(text);
  }
  EXPECT_TRUE(covers_all_ipv4(networks(texts)));
  texts.erase(texts.begin());  // drop 255.255.255.255
  EXPECT_FALSE(covers_all_ipv4(networks(texts)));
}

}  // namespace
