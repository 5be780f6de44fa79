// aliases(5) text -> alias entries and warnings. Pure: the file is read by aliases_section.
#include "portrelay/config/aliases_file.hpp"

#include <set>

#include "portrelay/base/ascii.hpp"

namespace portrelay::config {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r'))
    text.remove_suffix(1);
  return text;
}

std::string_view unquote(std::string_view text) {
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"')
    return text.substr(1, text.size() - 2);
  return text;
}

// Commas and blanks outside double quotes separate targets ("|cmd with, commas" stays
// one); an address holds neither.
std::vector<std::string_view> split_targets(std::string_view text) {
  std::vector<std::string_view> out;
  bool quoted = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && text[i] == '"') quoted = !quoted;
    const bool separator =
        i == text.size() || (!quoted && (text[i] == ',' || text[i] == ' ' || text[i] == '\t'));
    if (separator) {
      if (i > start) out.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

bool plausible(std::string_view text, bool name) {
  if (text.empty() || text.size() > 254) return false;
  for (char c : text) {
    const auto octet = static_cast<unsigned char>(c);
    if (octet <= ' ' || octet == 0x7f || c == '<' || c == '>' || c == '"' || c == ',') return false;
  }
  const std::size_t at = text.rfind('@');
  if (name) return at == std::string_view::npos;
  return at == std::string_view::npos || (at > 0 && at + 1 < text.size());
}

struct LogicalLine {
  std::string text;
  int line = 0;  // where it starts
};

std::vector<LogicalLine> logical_lines(std::string_view text) {
  std::vector<LogicalLine> lines;
  int number = 0;
  bool continuable = false;  // the last physical line was part of an entry
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim(line).empty() || line.front() == '#') {
      // A comment does not end an entry (sendmail reads on); a blank line does.
      if (trim(line).empty()) continuable = false;
      continue;
    }
    if ((line.front() == ' ' || line.front() == '\t') && continuable) {
      lines.back().text += ' ';
      lines.back().text += trim(line);
      continue;
    }
    lines.push_back({std::string(line), number});
    continuable = true;
  }
  return lines;
}

}  // namespace

AliasesFile parse_aliases_file(std::string_view text, const std::string& path) {
  AliasesFile result;
  std::set<std::string> seen;
  for (const LogicalLine& entry : logical_lines(text)) {
    const std::string where = path + ":" + std::to_string(entry.line) + ": ";
    const std::string_view line = entry.text;
    const std::size_t colon = line.find(':');
    const std::string name(unquote(trim(line.substr(0, colon))));
    if (colon == std::string_view::npos || !plausible(name, true)) {
      result.warnings.push_back(where + "not \"name: address, ...\"; line ignored");
      continue;
    }
    if (!seen.insert(ascii::lower(name)).second) {
      result.warnings.push_back(where + name + " is listed again; the first entry is used");
      continue;
    }
    std::vector<std::string> targets;
    for (std::string_view raw : split_targets(line.substr(colon + 1))) {
      const std::string_view target = unquote(raw);
      if (target.empty()) continue;
      std::string refused;
      if (target.front() == '|')
        refused = "a command (" + std::string(target) + ")";
      else if (target.front() == '/')
        refused = "a file (" + std::string(target) + ")";
      else if (ascii::lower(target.substr(0, 9)) == ":include:")
        refused = "an include (" + std::string(target) + ")";
      if (!refused.empty()) {
        result.warnings.push_back(where + name + ": " + refused +
                                  " is not used: portrelay only forwards to addresses");
        continue;
      }
      if (!plausible(target, false)) {
        result.warnings.push_back(where + name + ": \"" + std::string(target) +
                                  "\" is not an address; not used");
        continue;
      }
      targets.emplace_back(target);
    }
    if (targets.empty()) {
      result.warnings.push_back(where + name + " has no address to forward to; entry not used");
      continue;
    }
    result.entries[name] = std::move(targets);
  }
  return result;
}

}  // namespace portrelay::config
