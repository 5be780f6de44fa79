#pragma once
// ASCII case handling for protocol keywords (SMTP verbs, ESMTP keywords, AUTH mechanisms).
// Deliberately not std::toupper: protocol text must not change meaning with the locale.
#include <cstdint>
#include <string>
#include <string_view>

namespace portrelay::ascii {

constexpr char upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

inline std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = upper(c);
  return out;
}

constexpr char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = lower(c);
  return out;
}

constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (upper(a[i]) != upper(b[i])) return false;
  return true;
}

// `value`'s low `width` hex digits, zero-padded, appended to `out` (no snprintf: spool ids
// and record fields are written on every message).
inline void append_hex(std::string& out, std::uint64_t value, std::size_t width,
                       bool upper_case = false) {
  const char* digits = upper_case ? "0123456789ABCDEF" : "0123456789abcdef";
  out.resize(out.size() + width);
  for (std::size_t i = 0; i < width; ++i, value >>= 4) out[out.size() - 1 - i] = digits[value & 15];
}

}  // namespace portrelay::ascii
