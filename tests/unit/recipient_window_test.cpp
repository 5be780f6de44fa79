// RecipientWindow is pure: every test passes the minute in (a fake clock). The file format
// is checked byte by byte; the file functions against a temporary directory.
#include "portrelay/relay/recipient_window.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "portrelay/relay/recipient_window_file.hpp"
#include "portrelay/relay/upstream_gate.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::relay {
namespace {

using Minutes = RecipientWindow::Minutes;
constexpr Minutes kDay = RecipientWindow::kWindowMinutes;
// An arbitrary, fixed minute (2026-12-06 12:00 UTC): nothing here reads the real clock.
constexpr Minutes kT0 = 29'899'440;

TEST(RecipientWindow, CountsWhatWasAddedInTheLast24Hours) {
  RecipientWindow window;
  EXPECT_EQ(window.count(kT0), 0u);
  window.add(kT0, 3);
  window.add(kT0, 2);
  window.add(kT0 + 10, 4);
  EXPECT_EQ(window.count(kT0 + 10), 9u);
  // Minute kT0 leaves the window at kT0 + 1440, not a minute earlier.
  EXPECT_EQ(window.count(kT0 + kDay - 1), 9u);
  EXPECT_EQ(window.count(kT0 + kDay), 4u);
  EXPECT_EQ(window.count(kT0 + 10 + kDay), 0u);
}

TEST(RecipientWindow, ASlotReusedADayLaterStartsAgainAtZero) {
  RecipientWindow window;
  window.add(kT0, 7);
  window.add(kT0 + kDay, 1);  // the same slot of the ring
  EXPECT_EQ(window.count(kT0 + kDay), 1u);
}

TEST(RecipientWindow, RoomAtIsWhenTheOldestEntriesLeave) {
  RecipientWindow window;
  window.add(kT0, 2);
  window.add(kT0 + 30, 3);
  EXPECT_EQ(window.room_at(kT0 + 60, 0), kT0 + 60);         // no limit
  EXPECT_EQ(window.room_at(kT0 + 60, 6), kT0 + 60);         // 5 < 6: room now
  EXPECT_EQ(window.room_at(kT0 + 60, 5), kT0 + kDay);       // the 2 of kT0 leave then
  EXPECT_EQ(window.room_at(kT0 + 60, 3), kT0 + 30 + kDay);  // 3 left at kT0 + 1440: full
  EXPECT_EQ(window.room_at(kT0 + 60, 2), kT0 + 30 + kDay);
  EXPECT_EQ(window.room_at(kT0 + kDay, 3), kT0 + 30 + kDay);
  EXPECT_EQ(window.room_at(kT0 + kDay + 30, 1), kT0 + kDay + 30);
}

TEST(RecipientWindow, SerializesByteByByteOldestFirstOnlyNonEmptyMinutesInTheWindow) {
  RecipientWindow window;
  window.add(kT0 - kDay, 9);  // already out of the window at kT0 + 5
  window.add(kT0 + 5, 1);
  window.add(kT0, 12);
  EXPECT_EQ(window.serialize(kT0 + 5),
            "portrelay-recipient-window 1\n"
            "29899440 12\n"
            "29899445 1\n");
  EXPECT_EQ(RecipientWindow().serialize(kT0), "portrelay-recipient-window 1\n");
}

TEST(RecipientWindow, ParseReadsBackWhatSerializeWrote) {
  RecipientWindow window;
  for (Minutes m = 0; m < kDay; m += 7) window.add(kT0 + m, static_cast<std::uint64_t>(m + 1));
  const Minutes now = kT0 + kDay - 1;
  std::string error;
  auto back = RecipientWindow::parse(window.serialize(now), now, &error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->count(now), window.count(now));
  EXPECT_EQ(back->serialize(now), window.serialize(now));
  // Read later: what left the window meanwhile is dropped.
  auto later = RecipientWindow::parse(window.serialize(now), now + 100, &error);
  ASSERT_TRUE(later) << error;
  EXPECT_EQ(later->count(now + 100), window.count(now + 100));
}

TEST(RecipientWindow, ParseRefusesAnythingElse) {
  const Minutes now = kT0;
  for (const char* text : {"", "portrelay-recipient-window 2\n", "portrelay-recipient-window 1",
                           "portrelay-recipient-window 1\n29899440 3",     // cut short
                           "portrelay-recipient-window 1\n29899440\n",     // no count
                           "portrelay-recipient-window 1\n29899440 x\n",   // not a number
                           "portrelay-recipient-window 1\n29899440 -1\n",  // negative
                           "portrelay-recipient-window 1\n29899440 0\n",   // never written
                           "portrelay-recipient-window 1\n29899440  1\n",  // two spaces
                           "portrelay-recipient-window 1\n29899440 1\n29899430 1\n",  // order
                           "portrelay-recipient-window 1\n\n"}) {
    std::string error;
    EXPECT_FALSE(RecipientWindow::parse(text, now, &error)) << text;
    EXPECT_FALSE(error.empty()) << text;
  }
}

TEST(RecipientWindow, AMinuteAfterNowCountsAsNowWhenTheClockWentBack) {
  std::string error;
  auto window = RecipientWindow::parse("portrelay-recipient-window 1\n29899450 4\n", kT0, &error);
  ASSERT_TRUE(window) << error;
  EXPECT_EQ(window->count(kT0), 4u);
  EXPECT_EQ(window->count(kT0 + kDay - 1), 4u);
  EXPECT_EQ(window->count(kT0 + kDay), 0u);
}

TEST(RecipientWindow, MinuteOfIsWholeMinutesSinceTheEpoch) {
  using namespace std::chrono;
  EXPECT_EQ(RecipientWindow::minute_of(system_clock::time_point(minutes(kT0) + seconds(59))), kT0);
}

TEST(RecipientWindowFile, SavedThenLoaded) {
  test::TempDir dir;
  const std::string limits = dir.path() + "/limits";
  RecipientWindow window;
  window.add(kT0, 5);
  ASSERT_TRUE(save_recipient_window(limits, "ses", window, kT0));
  struct stat info {};
  ASSERT_EQ(::stat(limits.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700u);
  std::ifstream in(limits + "/ses.window");
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "portrelay-recipient-window 1\n29899440 5\n");
  EXPECT_EQ(load_recipient_window(limits, "ses", kT0 + 1).count(kT0 + 1), 5u);
  // No temporary file left behind.
  EXPECT_NE(::stat((limits + "/.ses.window.tmp").c_str(), &info), 0);
}

// The daemon's path: serialised on the caller's thread, written on the writer's; a newer save
// of one upstream replaces one still queued, so the file ends with the last count.
TEST(RecipientWindowFile, TheWriterThreadWritesTheLastSavedWindow) {
  test::TempDir dir;
  const std::string limits = dir.path() + "/limits";
  RecipientWindow window;
  auto& writer = RecipientWindowWriter::shared();
  for (int i = 1; i <= 3; ++i) {
    window.add(kT0, 1);
    writer.save(limits, "ses", window, kT0);
  }
  writer.flush();
  EXPECT_EQ(load_recipient_window(limits, "ses", kT0).count(kT0), 3u);
}

TEST(RecipientWindowFile, MissingOrCorruptFileStartsEmpty) {
  test::TempDir dir;
  EXPECT_EQ(load_recipient_window(dir.path(), "ses", kT0).count(kT0), 0u);
  std::ofstream(dir.path() + "/ses.window") << "portrelay-recipient-window 1\n29899440 garbage\n";
  EXPECT_EQ(load_recipient_window(dir.path(), "ses", kT0).count(kT0), 0u);
}

TEST(RecipientWindowFile, NamesAreSafeFileNames) {
  EXPECT_EQ(recipient_window_file_name("ses-eu_1.a"), "ses-eu_1.a.window");
  EXPECT_EQ(recipient_window_file_name("../x y"), "%2E.%2Fx%20y.window");
  EXPECT_EQ(recipient_window_file_name(""), ".window");
}

TEST(UpstreamGateDaily, AFullWindowHoldsTheUpstreamUntilItHasRoom) {
  using namespace std::chrono_literals;
  const auto t0 = UpstreamGate::TimePoint{} + 100h;
  UpstreamGate gate(GateLimits{}, t0);
  EXPECT_FALSE(gate.message_wait(t0, false, std::nullopt));
  EXPECT_FALSE(gate.message_wait(t0, false, t0 - 1s));  // room already
  EXPECT_EQ(gate.message_wait(t0, false, t0 + 3h), t0 + 3h);
  gate.throttled(t0, PauseKind::Quota);  // one hour's pause: the later time wins
  EXPECT_EQ(gate.message_wait(t0, false, t0 + 3h), t0 + 3h);
  EXPECT_EQ(gate.message_wait(t0, false, t0 + 10min), gate.paused_until());
}

}  // namespace
}  // namespace portrelay::relay
