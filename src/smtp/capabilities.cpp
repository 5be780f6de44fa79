#include "portrelay/smtp/capabilities.hpp"

#include <algorithm>
#include <charconv>

#include "portrelay/base/ascii.hpp"

namespace portrelay::smtp {
namespace {

using ascii::upper;

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t pos = 0;
  while (pos < line.size()) {
    while (pos < line.size() && is_blank(line[pos])) ++pos;
    std::size_t start = pos;
    while (pos < line.size() && !is_blank(line[pos])) ++pos;
    if (pos > start) words.push_back(line.substr(start, pos - start));
  }
  return words;
}

void add_mechanism(std::vector<std::string>& mechanisms, std::string_view name) {
  if (name.empty()) return;
  std::string mechanism = upper(name);
  if (std::find(mechanisms.begin(), mechanisms.end(), mechanism) == mechanisms.end()) {
    mechanisms.push_back(std::move(mechanism));
  }
}

}  // namespace

bool Capabilities::supports_auth(std::string_view mechanism) const {
  return std::find(auth_mechanisms.begin(), auth_mechanisms.end(), upper(mechanism)) !=
         auth_mechanisms.end();
}

Capabilities Capabilities::from_ehlo(const Reply& reply) {
  Capabilities caps;
  for (std::size_t i = 1; i < reply.lines.size(); ++i) {
    std::vector<std::string_view> words = split_words(reply.lines[i]);
    if (words.empty()) continue;
    std::string keyword = upper(words.front());
    std::string shown = keyword;
    for (std::size_t w = 1; w < words.size(); ++w) (shown += ' ') += words[w];
    caps.keywords.push_back(std::move(shown));
    if (keyword == "PIPELINING") {
      caps.pipelining = true;
    } else if (keyword == "STARTTLS") {
      caps.starttls = true;
    } else if (keyword == "8BITMIME") {
      caps.eight_bit_mime = true;
    } else if (keyword == "ENHANCEDSTATUSCODES") {
      caps.enhanced_status_codes = true;
    } else if (keyword == "SMTPUTF8") {
      caps.smtputf8 = true;
    } else if (keyword == "SIZE") {
      caps.size = true;
      if (words.size() > 1) {
        std::uint64_t limit = 0;
        std::string_view text = words[1];
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), limit);
        // A malformed or absurd value means "no announced limit" rather than a bogus one.
        if (ec == std::errc() && end == text.data() + text.size()) caps.size_limit = limit;
      }
    } else if (keyword == "AUTH") {
      for (std::size_t w = 1; w < words.size(); ++w) add_mechanism(caps.auth_mechanisms, words[w]);
    } else if (keyword.starts_with("AUTH=")) {
      // Pre-RFC 4954 form still sent by some servers: "AUTH=LOGIN PLAIN".
      add_mechanism(caps.auth_mechanisms, words.front().substr(5));
      for (std::size_t w = 1; w < words.size(); ++w) add_mechanism(caps.auth_mechanisms, words[w]);
    }
  }
  return caps;
}

}  // namespace portrelay::smtp
