// Durations ("1m30s") and sizes ("25MiB") as written in the configuration file.
#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "portrelay/config/config.hpp"

namespace portrelay::config {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Consumes a run of decimal digits from the front of `text`. nullopt if there is none or the
// number does not fit in 64 bits.
std::optional<std::uint64_t> take_number(std::string_view& text) {
  std::size_t length = 0;
  std::uint64_t value = 0;
  while (length < text.size() && is_digit(text[length])) {
    if (__builtin_mul_overflow(value, 10u, &value) ||
        __builtin_add_overflow(value, static_cast<unsigned>(text[length] - '0'), &value)) {
      return std::nullopt;
    }
    ++length;
  }
  if (length == 0) return std::nullopt;
  text.remove_prefix(length);
  return value;
}

struct DurationUnit {
  std::string_view suffix;
  std::uint64_t milliseconds;
};

// Largest first: components must appear in this order ("1h30m", not "30m1h"), each at most once.
constexpr DurationUnit kDurationUnits[] = {
    {"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}};

// Consumes the unit letters after a number; returns its position in kDurationUnits or -1.
int take_duration_unit(std::string_view& text) {
  std::size_t length = 0;
  while (length < text.size() && text[length] >= 'a' && text[length] <= 'z') ++length;
  const std::string_view letters = text.substr(0, length);
  text.remove_prefix(length);
  for (std::size_t i = 0; i < std::size(kDurationUnits); ++i) {
    if (kDurationUnits[i].suffix == letters) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t total = 0;
  int previous_rank = -1;
  while (!text.empty()) {
    const auto amount = take_number(text);
    if (!amount) return std::nullopt;
    const int rank = take_duration_unit(text);
    if (rank < 0) return std::nullopt;  // includes a bare number: units are mandatory
    if (rank <= previous_rank) return std::nullopt;
    previous_rank = rank;
    std::uint64_t part = 0;
    if (__builtin_mul_overflow(*amount, kDurationUnits[rank].milliseconds, &part) ||
        __builtin_add_overflow(total, part, &total)) {
      return std::nullopt;
    }
  }
  if (total > static_cast<std::uint64_t>(std::numeric_limits<Duration::rep>::max())) {
    return std::nullopt;
  }
  return Duration(static_cast<Duration::rep>(total));
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  const auto amount = take_number(text);
  if (!amount) return std::nullopt;

  // Units are case-insensitive and need the trailing "B": a bare "M" means MB to some people
  // and MiB to others (nginx), so it is rejected rather than guessed.
  std::string unit;
  for (char c : text) unit.push_back(lower(c));
  std::uint64_t multiplier = 0;
  if (unit.empty() || unit == "b")
    multiplier = 1;
  else if (unit == "kb")
    multiplier = 1000;
  else if (unit == "mb")
    multiplier = 1000 * 1000;
  else if (unit == "gb")
    multiplier = 1000 * 1000 * 1000;
  else if (unit == "tb")
    multiplier = 1000ull * 1000 * 1000 * 1000;
  else if (unit == "kib")
    multiplier = 1ull << 10;
  else if (unit == "mib")
    multiplier = 1ull << 20;
  else if (unit == "gib")
    multiplier = 1ull << 30;
  else if (unit == "tib")
    multiplier = 1ull << 40;
  else
    return std::nullopt;

  std::uint64_t bytes = 0;
  if (__builtin_mul_overflow(*amount, multiplier, &bytes)) return std::nullopt;
  return bytes;
}

std::string format_duration(Duration duration) {
  auto ms = duration.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace portrelay::config
