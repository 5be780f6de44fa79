// Glob matching of envelope senders: '*' only, no case.
#include "portrelay/config/sender_pattern.hpp"

namespace portrelay::config {
namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

bool sender_matches(std::string_view pattern, std::string_view address) {
  if (address.empty()) return false;
  // Iterative glob with one backtracking point (the last '*'): linear in practice and never
  // exponential, whatever the pattern.
  std::size_t p = 0, a = 0, star = std::string_view::npos, resume = 0;
  while (a < address.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = a;
    } else if (p < pattern.size() && lower(pattern[p]) == lower(address[a])) {
      ++p;
      ++a;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      a = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool any_sender_matches(const std::vector<std::string>& patterns, std::string_view address) {
  for (const std::string& pattern : patterns)
    if (sender_matches(pattern, address)) return true;
  return false;
}

std::string sender_pattern_problem(std::string_view pattern) {
  if (pattern.empty()) return "is empty";
  if (pattern.size() > 254) return "is longer than 254 characters";
  for (char c : pattern) {
    const auto octet = static_cast<unsigned char>(c);
    if (octet <= ' ' || octet == 0x7f) return "holds a space or a control character";
    if (c == '<' || c == '>') return "holds an angle bracket (write the address without <>)";
    if (c == ',') return "holds a comma (write one pattern per string)";
  }
  return {};
}

}  // namespace portrelay::config
