// What `portrelay run` asks of RLIMIT_NOFILE (src/app/descriptor_limit.cpp); raising it is
// tested end to end in tests/e2e/test_open_files_limit.sh.
#include "portrelay/app/descriptor_limit.hpp"

#include <gtest/gtest.h>

namespace {

using portrelay::descriptors_needed;
using portrelay::config::parse_config;

constexpr const char* kUpstream = "[[upstream]]\nhost = \"smtp.example.com\"\nport = 587\n";

constexpr const char* kOneLoop = "[server]\nworkers = 1\n";

TEST(DescriptorLimit, TwoPerSessionPlusPoolAndRoom) {
  // 2 x 1000 sessions + 64 pooled connections (the ceiling) for the one endpoint + 64.
  EXPECT_EQ(descriptors_needed(parse_config(std::string(kOneLoop) + kUpstream, "a.toml")), 2128u);
  EXPECT_EQ(descriptors_needed(parse_config(
                "[server]\nworkers = 1\nmax_sessions = 10\n[relay]\npool_max_per_endpoint = 0\n" +
                    std::string(kUpstream),
                "b.toml")),
            84u);
}

TEST(DescriptorLimit, EveryWorkerLoopHasItsPoolAndListeners) {
  // 2 x 1000 sessions + 64, then per loop 64 pooled connections (the ceiling), and for each
  // of the three worker loops 4 of its own and its socket on the one listen address.
  EXPECT_EQ(descriptors_needed(
                parse_config("[server]\nworkers = 4\n" + std::string(kUpstream), "w.toml")),
            2064u + 4 * 64u + 3 * (4u + 1u));
}

TEST(DescriptorLimit, SpoolDeliveriesCountTwiceEach) {
  // A background delivery holds its upstream connection and the queued file.
  EXPECT_EQ(descriptors_needed(parse_config(std::string(kOneLoop) +
                                                "[relay]\nmode = \"spool\"\n[spool]\ndir = "
                                                "\"/tmp/x\"\nmax_deliveries = 8\n" +
                                                kUpstream,
                                            "c.toml")),
            2128u + 16u);
}

}  // namespace
