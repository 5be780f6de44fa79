#pragma once
// ASCII case handling for protocol keywords (SMTP verbs, ESMTP keywords, AUTH mechanisms).
// Deliberately not std::toupper: protocol text must not change meaning with the locale.
#include <string>
#include <string_view>

namespace portrelay::ascii {

constexpr char upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

inline std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = upper(c);
  return out;
}

constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (upper(a[i]) != upper(b[i])) return false;
  return true;
}

}  // namespace portrelay::ascii
