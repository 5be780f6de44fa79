// What `portrelay run` asks of RLIMIT_NOFILE (src/app/descriptor_limit.cpp); raising it is
// tested end to end in tests/e2e/test_open_files_limit.sh.
#include "portrelay/app/descriptor_limit.hpp"

#include <gtest/gtest.h>

namespace {

using portrelay::descriptors_needed;
using portrelay::config::parse_config;

constexpr const char* kUpstream = "[[upstream]]\nhost = \"smtp.example.com\"\nport = 587\n";

TEST(DescriptorLimit, TwoPerSessionPlusPoolAndRoom) {
  // 2 x 1000 sessions + 64 pooled connections (the ceiling) for the one endpoint + 64.
  EXPECT_EQ(descriptors_needed(parse_config(kUpstream, "a.toml")), 2128u);
  EXPECT_EQ(descriptors_needed(
                parse_config("[server]\nmax_sessions = 10\n[relay]\npool_max_per_endpoint = 0\n" +
                                 std::string(kUpstream),
                             "b.toml")),
            84u);
}

TEST(DescriptorLimit, SpoolDeliveriesCountTwiceEach) {
  // A background delivery holds its upstream connection and the queued file.
  EXPECT_EQ(descriptors_needed(parse_config("[relay]\nmode = \"spool\"\n[spool]\ndir = \"/tmp/x\"\n"
                                            "max_deliveries = 8\n" +
                                                std::string(kUpstream),
                                            "c.toml")),
            2128u + 16u);
}

}  // namespace
