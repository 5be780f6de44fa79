#include "portrelay/submit/message.hpp"

#include <cstdio>
#include <ctime>
#include <stdexcept>

namespace portrelay::submit {
namespace {

// RFC 5321 4.5.3.1.6: 998 octets per line without CRLF.
constexpr std::size_t kMaxLineOctets = 998;

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool same_name(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// "Name:" with a field name of printable characters other than ':' (RFC 5322 2.2).
std::optional<std::string> field_name_of(std::string_view line) {
  const auto colon = line.find(':');
  if (colon == 0 || colon == std::string_view::npos) return std::nullopt;
  for (char c : line.substr(0, colon))
    if (c < 33 || c > 126) return std::nullopt;
  return std::string(line.substr(0, colon));
}

bool is_continuation(std::string_view line) {
  return !line.empty() && (line.front() == ' ' || line.front() == '\t');
}

// Appends `line` (no CRLF) to `out` in pieces of at most kMaxLineOctets, each ending in CRLF;
// `continuation` starts each later piece (" " to fold a header field, "" to split a body line).
void append_broken(std::string_view line, std::string_view continuation, std::string& out) {
  std::size_t limit = kMaxLineOctets;
  while (line.size() > limit) {
    out.append(line.substr(0, limit));
    out += "\r\n";
    out.append(continuation);
    line.remove_prefix(limit);
    limit = kMaxLineOctets - continuation.size();
  }
  out.append(line);
  out += "\r\n";
}

void append_lines_broken(std::string_view text, std::string_view continuation, std::string& out) {
  while (!text.empty()) {
    auto end = text.find("\r\n");
    if (end == std::string_view::npos) end = text.size();
    append_broken(text.substr(0, end), continuation, out);
    text.remove_prefix(std::min(text.size(), end + 2));
  }
}

}  // namespace

ReadMessage read_message(std::istream& in, bool lone_dot_ends, std::uint64_t max_octets) {
  ReadMessage read;
  std::string line;
  auto end_line = [&]() -> bool {  // false: stop reading
    if (lone_dot_ends && line == ".") return false;
    read.content += line;
    read.content += "\r\n";
    line.clear();
    if (read.content.size() > max_octets) {
      read.too_big = true;
      return false;
    }
    return true;
  };
  char buffer[65536];
  bool previous_cr = false;
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    const std::string_view chunk(buffer, static_cast<std::size_t>(in.gcount()));
    for (char c : chunk) {
      if (c == '\n') {
        // CRLF was already ended at the CR.
        if (!previous_cr && !end_line()) return read;
        previous_cr = false;
        continue;
      }
      if (previous_cr) previous_cr = false;
      if (c == '\r') {
        previous_cr = true;
        if (!end_line()) return read;
        continue;
      }
      if (static_cast<unsigned char>(c) >= 0x80) read.eight_bit = true;
      line += c;
    }
  }
  if (!line.empty()) end_line();
  return read;
}

Message Message::parse(std::string_view content) {
  Message message;
  std::string_view rest = content;
  while (!rest.empty()) {
    auto end = rest.find("\r\n");
    const std::string_view line = rest.substr(0, end);
    const std::size_t taken = end == std::string_view::npos ? rest.size() : end + 2;
    if (line.empty()) {  // the empty line that ends the header section
      rest.remove_prefix(taken);
      break;
    }
    if (is_continuation(line) && !message.fields_.empty()) {
      message.fields_.back().text.append(rest.substr(0, taken));
    } else if (auto name = field_name_of(line)) {
      message.fields_.push_back({*name, std::string(rest.substr(0, taken))});
    } else {
      break;  // first body line without the empty line before it
    }
    rest.remove_prefix(taken);
  }
  message.body_ = std::string(rest);
  return message;
}

bool Message::has_field(std::string_view name) const {
  for (const auto& field : fields_)
    if (same_name(field.name, name)) return true;
  return false;
}

std::vector<std::string> Message::field_values(std::string_view name) const {
  std::vector<std::string> values;
  for (const auto& field : fields_) {
    if (!same_name(field.name, name)) continue;
    std::string value;
    for (char c : std::string_view(field.text).substr(field.name.size() + 1))
      if (c != '\r' && c != '\n') value += c;
    values.push_back(std::move(value));
  }
  return values;
}

void Message::remove_fields(std::string_view name) {
  std::erase_if(fields_, [&](const Field& field) { return same_name(field.name, name); });
}

void Message::add_field(std::string_view name, std::string_view value) {
  fields_.push_back({std::string(name), std::string(name) + ": " + std::string(value) + "\r\n"});
}

std::string Message::render() const {
  std::string out;
  for (const auto& field : fields_) append_lines_broken(field.text, " ", out);
  out += "\r\n";
  append_lines_broken(body_, "", out);
  return out;
}

std::string format_mailbox(std::string_view full_name, std::string_view address) {
  if (full_name.empty()) return "<" + std::string(address) + ">";
  bool atoms_only = true;  // letters, digits, spaces and RFC 5322 atext specials
  for (char c : full_name) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == ' ' ||
                       std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
    if (!plain) atoms_only = false;
  }
  std::string name;
  if (atoms_only) {
    name = full_name;
  } else {
    name = "\"";
    for (char c : full_name) {
      if (c == '"' || c == '\\') name += '\\';
      if (c != '\r' && c != '\n') name += c;
    }
    name += "\"";
  }
  return name + " <" + std::string(address) + ">";
}

}  // namespace portrelay::submit
