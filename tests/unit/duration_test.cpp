// parse_duration, parse_size and parse_listen_address: the value syntaxes of the config file.
#include <gtest/gtest.h>

#include <chrono>

#include "portrelay/config/config.hpp"

namespace {

using namespace std::chrono_literals;
using portrelay::config::Duration;
using portrelay::config::ListenAddress;
using portrelay::config::parse_duration;
using portrelay::config::parse_listen_address;
using portrelay::config::parse_size;

TEST(DurationParse, SingleUnits) {
  EXPECT_EQ(parse_duration("250ms"), Duration(250));
  EXPECT_EQ(parse_duration("10s"), Duration(10'000));
  EXPECT_EQ(parse_duration("5m"), Duration(300'000));
  EXPECT_EQ(parse_duration("1h"), Duration(3'600'000));
  EXPECT_EQ(parse_duration("0s"), Duration(0));
  EXPECT_EQ(parse_duration("0010s"), Duration(10'000));
}

TEST(DurationParse, CompoundLargestUnitFirst) {
  EXPECT_EQ(parse_duration("1m30s"), Duration(90'000));
  EXPECT_EQ(parse_duration("1h2m3s4ms"), Duration(3'723'004));
  EXPECT_EQ(parse_duration("2s500ms"), Duration(2'500));
  EXPECT_EQ(parse_duration("90s"), Duration(90'000)) << "a component may exceed its unit";
}

TEST(DurationParse, RejectsOutOfOrderOrRepeatedUnits) {
  EXPECT_FALSE(parse_duration("30s1m"));
  EXPECT_FALSE(parse_duration("1s1s"));
  EXPECT_FALSE(parse_duration("500ms1s"));
}

TEST(DurationParse, UnitsAreMandatory) {
  EXPECT_FALSE(parse_duration("5"));
  EXPECT_FALSE(parse_duration("0"));
  EXPECT_FALSE(parse_duration("1m30"));
}

TEST(DurationParse, RejectsMalformed) {
  for (const char* text : {"", "s", "ms", "-5s", "+5s", "1.5s", "5 s", " 5s", "5s ", "5S", "5sec",
                           "5d", "5us", "1m 30s", "m5"}) {
    EXPECT_FALSE(parse_duration(text)) << '"' << text << '"';
  }
}

TEST(DurationParse, Overflow) {
  EXPECT_FALSE(parse_duration("99999999999999999999ms")) << "more than 64 bits of digits";
  EXPECT_FALSE(parse_duration("9223372036854775808ms")) << "INT64_MAX + 1";
  EXPECT_EQ(parse_duration("9223372036854775807ms"), Duration(9223372036854775807));
  EXPECT_FALSE(parse_duration("5124095576030432h")) << "multiplication overflows";
  EXPECT_FALSE(parse_duration("2562047788015215h9223372036854775807ms")) << "sum overflows";
}

TEST(DurationParseSize, BareNumberIsBytes) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("1048576"), 1048576u);
  EXPECT_EQ(parse_size("100B"), 100u);
}

TEST(DurationParseSize, BinaryAndDecimalUnits) {
  EXPECT_EQ(parse_size("512KiB"), 512u * 1024);
  EXPECT_EQ(parse_size("25MiB"), 25u << 20);
  EXPECT_EQ(parse_size("1GiB"), 1ull << 30);
  EXPECT_EQ(parse_size("2TiB"), 2ull << 40);
  EXPECT_EQ(parse_size("10KB"), 10'000u);
  EXPECT_EQ(parse_size("10MB"), 10'000'000u);
  EXPECT_EQ(parse_size("3GB"), 3'000'000'000u);
  EXPECT_EQ(parse_size("1TB"), 1'000'000'000'000u);
}

TEST(DurationParseSize, UnitsAreCaseInsensitive) {
  EXPECT_EQ(parse_size("25mib"), 25u << 20);
  EXPECT_EQ(parse_size("10mb"), 10'000'000u);
  EXPECT_EQ(parse_size("1b"), 1u);
}

TEST(DurationParseSize, RejectsAmbiguousOrMalformed) {
  for (const char* text : {"", "MiB", "25M", "25K", "25Mi", "-1", "+1", "1.5MiB", "25 MiB", " 25",
                           "25MiB ", "0x10", "25MiBs", "1e6"}) {
    EXPECT_FALSE(parse_size(text)) << '"' << text << '"';
  }
}

TEST(DurationParseSize, Overflow) {
  EXPECT_EQ(parse_size("18446744073709551615"), 18446744073709551615ull);
  EXPECT_FALSE(parse_size("18446744073709551616"));
  EXPECT_EQ(parse_size("16777215TiB"), 16777215ull << 40);
  EXPECT_FALSE(parse_size("16777216TiB"));
}

TEST(DurationListenAddress, Ipv4AndBracketedIpv6) {
  const auto v4 = parse_listen_address("127.0.0.1:2525");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 2525);
  EXPECT_EQ(v4->str(), "127.0.0.1:2525");

  const auto v6 = parse_listen_address("[::1]:65535");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 65535);
  EXPECT_EQ(v6->str(), "[::1]:65535");

  EXPECT_EQ(parse_listen_address("0.0.0.0:25")->str(), "0.0.0.0:25");
  EXPECT_EQ(parse_listen_address("[::]:1")->str(), "[::]:1");
  EXPECT_EQ(parse_listen_address("127.0.0.1:0")->port, 0);  // any free port
}

TEST(DurationListenAddress, RejectsMalformed) {
  for (const char* text :
       {"", "127.0.0.1", "127.0.0.1:", ":2525", "127.0.0.1:65536", "127.0.0.1:99999",
        "127.0.0.1:-1", "127.0.0.1:+25", "127.0.0.1:25 ", "localhost:2525", "::1:2525", "[::1]2525",
        "[127.0.0.1]:2525", "[::1:2525", "1.2.3:25"}) {
    EXPECT_FALSE(parse_listen_address(text)) << '"' << text << '"';
  }
}

}  // namespace
