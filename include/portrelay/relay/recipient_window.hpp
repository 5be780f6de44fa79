#pragma once
// relay::RecipientWindow: how many recipients one upstream was sent in the last 24 hours
// (max_recipients_per_day), in per-minute buckets: 1440 counters whatever the traffic, so
// memory and the file stay bounded. Pure: every call takes the wall-clock time (minutes
// since the epoch), so each rule is unit-tested under a fake clock. Wall clock, not
// steady: the count is written to the spool directory and read back after a restart.
//
// A recipient counted in minute m leaves the window at the start of minute m + 1440: the
// window is at most one minute longer than 24 h, never shorter (a provider counting to the
// second never sees more than the limit from us).
//
// The text format (serialize/parse), one file per upstream:
//   portrelay-recipient-window 1
//   <minute since the epoch> <count>      one line per non-empty minute, oldest first
// Anything else (another header, a malformed line, minutes out of order) makes parse() fail:
// the caller starts empty and logs it. A minute after `now` (the clock went back) counts as
// `now`: the count is never lowered by a clock step.
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portrelay::relay {

class RecipientWindow {
 public:
  using Minutes = std::int64_t;  // since the Unix epoch
  static constexpr Minutes kWindowMinutes = 24 * 60;

  static Minutes minute_of(std::chrono::system_clock::time_point now);

  // `count` recipients sent in minute `now`.
  void add(Minutes now, std::uint64_t count);
  // Recipients in the window that ends with minute `now`.
  std::uint64_t count(Minutes now) const;
  // The first minute at which fewer than `limit` recipients are in the window (room for
  // one more): `now` when there is room already. `limit` 0: no limit, `now`.
  Minutes room_at(Minutes now, std::uint64_t limit) const;

  std::string serialize(Minutes now) const;
  // nullopt, with `error` set, when `text` is not a window written by serialize().
  static std::optional<RecipientWindow> parse(std::string_view text, Minutes now,
                                              std::string* error);

 private:
  struct Bucket {
    Minutes minute = -1;  // which minute this slot holds; stale when out of the window
    std::uint64_t count = 0;
  };
  static bool in_window(Minutes minute, Minutes now) {
    return minute >= 0 && minute <= now && now - minute < kWindowMinutes;
  }
  std::array<Bucket, kWindowMinutes> buckets_{};
};

}  // namespace portrelay::relay
