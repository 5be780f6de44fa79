#include "portrelay/relay/recipient_window.hpp"

#include <charconv>
#include <vector>

namespace portrelay::relay {
namespace {
constexpr std::string_view kHeader = "portrelay-recipient-window 1";

bool parse_number(std::string_view text, std::int64_t& out) {
  if (text.empty()) return false;
  const auto result = std::from_chars(text.data(), text.data() + text.size(), out);
  return result.ec == std::errc() && result.ptr == text.data() + text.size() && out >= 0;
}
}  // namespace

RecipientWindow::Minutes RecipientWindow::minute_of(std::chrono::system_clock::time_point now) {
  return std::chrono::floor<std::chrono::minutes>(now.time_since_epoch()).count();
}

void RecipientWindow::add(Minutes now, std::uint64_t count) {
  if (now < 0 || count == 0) return;
  Bucket& bucket = buckets_[static_cast<std::size_t>(now % kWindowMinutes)];
  if (bucket.minute != now) bucket = {now, 0};
  bucket.count += count;
}

std::uint64_t RecipientWindow::count(Minutes now) const {
  std::uint64_t total = 0;
  for (const Bucket& bucket : buckets_)
    if (in_window(bucket.minute, now)) total += bucket.count;
  return total;
}

RecipientWindow::Minutes RecipientWindow::room_at(Minutes now, std::uint64_t limit) const {
  if (limit == 0) return now;
  std::uint64_t total = count(now);
  if (total < limit) return now;
  // Oldest first: each minute that leaves the window takes its recipients with it.
  for (Minutes minute = now - kWindowMinutes + 1; minute <= now; ++minute) {
    const Bucket& bucket = buckets_[static_cast<std::size_t>(minute % kWindowMinutes)];
    if (bucket.minute != minute) continue;
    total -= bucket.count;
    if (total < limit) return minute + kWindowMinutes;
  }
  return now + kWindowMinutes;  // unreachable: an empty window has room
}

std::string RecipientWindow::serialize(Minutes now) const {
  std::string out(kHeader);
  out += '\n';
  for (Minutes minute = now - kWindowMinutes + 1; minute <= now; ++minute) {
    if (minute < 0) continue;
    const Bucket& bucket = buckets_[static_cast<std::size_t>(minute % kWindowMinutes)];
    if (bucket.minute != minute || bucket.count == 0) continue;
    out += std::to_string(minute) + ' ' + std::to_string(bucket.count) + '\n';
  }
  return out;
}

std::optional<RecipientWindow> RecipientWindow::parse(std::string_view text, Minutes now,
                                                      std::string* error) {
  auto fail = [error](std::string why) -> std::optional<RecipientWindow> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  const std::size_t first_end = text.find('\n');
  if (first_end == std::string_view::npos || text.substr(0, first_end) != kHeader)
    return fail("not a recipient window (the first line is not \"" + std::string(kHeader) + "\")");
  RecipientWindow window;
  std::string_view rest = text.substr(first_end + 1);
  std::size_t line_number = 1;
  Minutes previous = -1;
  while (!rest.empty()) {
    ++line_number;
    const std::size_t end = rest.find('\n');
    if (end == std::string_view::npos)
      return fail("line " + std::to_string(line_number) + " is cut short (no newline)");
    const std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end + 1);
    const std::size_t space = line.find(' ');
    std::int64_t minute = 0;
    std::int64_t count = 0;
    if (space == std::string_view::npos || !parse_number(line.substr(0, space), minute) ||
        !parse_number(line.substr(space + 1), count) || count == 0)
      return fail("line " + std::to_string(line_number) + " is not \"<minute> <count>\"");
    if (minute <= previous)
      return fail("line " + std::to_string(line_number) + ": minutes out of order");
    previous = minute;
    // The clock went back since it was written: count those as sent now (never fewer).
    if (minute > now) minute = now;
    if (in_window(minute, now)) window.add(minute, static_cast<std::uint64_t>(count));
  }
  return window;
}

}  // namespace portrelay::relay
