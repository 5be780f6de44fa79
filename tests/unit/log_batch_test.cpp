// A loop thread's log lines are kept and written together once per loop turn
// (log::begin_batching, net::Loop::batch_log_lines): nothing reaches stderr before the
// flush, an error line goes at once with what waited before it, and a loop turn flushes.
#include <gtest/gtest.h>
#include <uv.h>

#include <string>
#include <thread>

#include "portrelay/base/log.hpp"
#include "portrelay/net/loop.hpp"

namespace portrelay {
namespace {

// Counts how often `needle` occurs in `text`.
std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++count;
  return count;
}

class LogBatch : public ::testing::Test {
 protected:
  void SetUp() override {
    log::set_enabled(true);
    log::set_min_level(log::Level::Info);
  }
  void TearDown() override {
    log::end_batching();
    log::set_enabled(false);
  }
};

TEST_F(LogBatch, LinesWaitForTheFlushInOrder) {
  log::begin_batching();
  testing::internal::CaptureStderr();
  log::info("first", {{"n", "1"}});
  log::warn("second", {{"n", "2"}});
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");

  testing::internal::CaptureStderr();
  log::flush_batch();
  const std::string out = testing::internal::GetCapturedStderr();
  ASSERT_EQ(occurrences(out, "\n"), 2u) << out;
  EXPECT_LT(out.find("event=first n=1"), out.find("event=second n=2")) << out;

  testing::internal::CaptureStderr();
  log::flush_batch();  // nothing left
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST_F(LogBatch, AnErrorLeavesAtOnceWithWhatWaitedBeforeIt) {
  log::begin_batching();
  testing::internal::CaptureStderr();
  log::info("before", {});
  log::error("broken", {{"detail", "disk"}});
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_LT(out.find("event=before"), out.find("event=broken detail=disk")) << out;
  EXPECT_EQ(occurrences(out, "\n"), 2u) << out;
}

TEST_F(LogBatch, SixtyFourKibibytesOfLinesAreWrittenWithoutWaiting) {
  log::begin_batching();
  const std::string value(1000, 'x');
  testing::internal::CaptureStderr();
  for (int i = 0; i < 70; ++i) log::info("bulk", {{"value", value}});
  const std::string out = testing::internal::GetCapturedStderr();
  // 64 lines of about 1,050 octets pass 64 KiB: they leave, the rest waits.
  EXPECT_GE(occurrences(out, "event=bulk"), 60u);
  EXPECT_LT(occurrences(out, "event=bulk"), 70u);
  testing::internal::CaptureStderr();
  log::end_batching();
  EXPECT_EQ(occurrences(out + testing::internal::GetCapturedStderr(), "event=bulk"), 70u);
}

TEST_F(LogBatch, OtherThreadsWriteAtOnce) {
  log::begin_batching();
  testing::internal::CaptureStderr();
  std::thread([]() { log::info("from_worker", {}); }).join();
  EXPECT_NE(testing::internal::GetCapturedStderr().find("event=from_worker"), std::string::npos);
}

TEST_F(LogBatch, EndingTheBatchFlushesAndWritesAtOnceAgain) {
  log::begin_batching();
  testing::internal::CaptureStderr();
  log::info("kept", {});
  log::end_batching();
  log::info("direct", {});
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("event=kept"), std::string::npos) << out;
  EXPECT_NE(out.find("event=direct"), std::string::npos) << out;
}

TEST_F(LogBatch, EachLoopTurnFlushesAndTheLoopStillEnds) {
  uv_loop_t raw;
  ASSERT_EQ(uv_loop_init(&raw), 0);
  std::string seen_inside;
  {
    net::Loop loop(&raw);
    loop.batch_log_lines();
    testing::internal::CaptureStderr();
    loop.post([&]() { log::info("posted", {}); });
    // The prepare handle is unreferenced: the loop ends once the posted task ran, and the
    // line left before that (in the turn it was written).
    EXPECT_EQ(uv_run(&raw, UV_RUN_DEFAULT), 0);
    seen_inside = testing::internal::GetCapturedStderr();
  }
  EXPECT_NE(seen_inside.find("event=posted"), std::string::npos) << seen_inside;
  uv_run(&raw, UV_RUN_DEFAULT);  // the Loop's handles close
  EXPECT_EQ(uv_loop_close(&raw), 0);
}

}  // namespace
}  // namespace portrelay
