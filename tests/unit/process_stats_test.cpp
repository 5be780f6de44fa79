// parse_proc_stat / parse_boot_time on fixed text (proc(5) layouts), and one live read.
#include "portrelay/metrics/process_stats.hpp"

#include <gtest/gtest.h>

namespace portrelay::metrics {
namespace {

// Fields 1..24 of a real stat line; the command name has a space and a ')' in it.
constexpr const char* kStat =
    "4242 (port relay) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 "
    "250 75 0 0 20 0 3 0 123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 "
    "17 1 0 0 0 0 0\n";

TEST(ProcStat, ReadsTheFieldsAfterTheLastParenthesis) {
  auto stat = parse_proc_stat(kStat);
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->user_ticks, 250u);
  EXPECT_EQ(stat->system_ticks, 75u);
  EXPECT_EQ(stat->start_ticks, 123456u);
  EXPECT_EQ(stat->virtual_bytes, 987654321u);
  EXPECT_EQ(stat->resident_pages, 2048);
}

TEST(ProcStat, TruncatedOrGarbledLinesAreRefused) {
  EXPECT_FALSE(parse_proc_stat("").has_value());
  EXPECT_FALSE(parse_proc_stat("4242 (portrelay) S 1 2 3").has_value());
  EXPECT_FALSE(parse_proc_stat("4242 portrelay S 1 4242 4242 0 -1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1")
                   .has_value());
  std::string garbled = kStat;
  garbled.replace(garbled.find("250"), 3, "2x0");
  EXPECT_FALSE(parse_proc_stat(garbled).has_value());
}

TEST(ProcStat, BootTimeComesFromTheBtimeLine) {
  EXPECT_EQ(parse_boot_time("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n"), 1700000000);
  EXPECT_FALSE(parse_boot_time("cpu 1 2 3\n").has_value());
  EXPECT_FALSE(parse_boot_time("btime soon\n").has_value());
}

TEST(ProcStat, ThisProcessIsReadable) {
  auto stats = read_process_stats();
  ASSERT_TRUE(stats.has_value()) << "/proc is mounted on Linux";
  EXPECT_GT(stats->resident_bytes, 0);
  EXPECT_GT(stats->open_fds, 2);  // stdin, stdout, stderr at least
  EXPECT_GT(stats->start_time_seconds, 1.6e9);
}

}  // namespace
}  // namespace portrelay::metrics
