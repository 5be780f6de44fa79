#include "portrelay/smtp/mailbox_list.hpp"

#include <optional>

namespace portrelay::smtp {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Skips a comment starting at value[i] == '('; returns the offset just after its ')', or
// the end of `value` when it is not closed. Comments nest; '\' escapes the next octet.
std::size_t skip_comment(std::string_view value, std::size_t i, std::size_t end) {
  int depth = 0;
  for (; i < end; ++i) {
    const char c = value[i];
    if (c == '\\') {
      ++i;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')' && --depth == 0) {
      return i + 1;
    }
  }
  return end;
}

// Skips a quoted string starting at value[i] == '"'; returns the offset after the closing
// quote (or the end when unclosed).
std::size_t skip_quoted(std::string_view value, std::size_t i, std::size_t end) {
  for (++i; i < end; ++i) {
    if (value[i] == '\\')
      ++i;
    else if (value[i] == '"')
      return i + 1;
  }
  return end;
}

std::string_view trimmed(std::string_view value, std::size_t& begin, std::size_t& end) {
  while (begin < end && is_space(value[begin])) ++begin;
  while (end > begin && is_space(value[end - 1])) --end;
  return value.substr(begin, end - begin);
}

// The addr-spec in value[begin, end) without comments and whitespace (outside quotes), and
// the span from its first to its last significant octet.
struct Significant {
  std::string text;
  std::size_t first = 0, last = 0;  // [first, last) in value; first == last when none
};

Significant significant_text(std::string_view value, std::size_t begin, std::size_t end) {
  Significant out;
  bool any = false;
  for (std::size_t i = begin; i < end;) {
    const char c = value[i];
    if (c == '(') {
      i = skip_comment(value, i, end);
      continue;
    }
    if (is_space(c)) {
      ++i;
      continue;
    }
    const std::size_t start = i;
    i = c == '"' ? skip_quoted(value, i, end) : i + 1;
    out.text.append(value.substr(start, i - start));
    if (!any) out.first = start;
    any = true;
    out.last = i;
  }
  if (!any) out.first = out.last = begin;
  return out;
}

std::string without_source_route(std::string address) {
  if (!address.empty() && address.front() == '@') {
    const auto colon = address.find(':');
    address = colon == std::string::npos ? std::string() : address.substr(colon + 1);
  }
  return address;
}

// One mailbox in value[begin, end) (between separators), or nothing when it holds none.
std::optional<Mailbox> parse_mailbox(std::string_view value, std::size_t begin, std::size_t end) {
  trimmed(value, begin, end);
  if (begin == end) return std::nullopt;
  Mailbox mailbox;
  mailbox.begin = begin;
  mailbox.end = end;
  for (std::size_t i = begin; i < end;) {
    const char c = value[i];
    if (c == '(') {
      i = skip_comment(value, i, end);
    } else if (c == '"') {
      i = skip_quoted(value, i, end);
    } else if (c == '<') {
      // The '>' that closes it, read as parse_mailbox_list reads the list: quoted strings
      // and comments hide their contents.
      std::size_t close = i + 1;
      while (close < end && value[close] != '>') {
        if (value[close] == '"')
          close = skip_quoted(value, close, end);
        else if (value[close] == '(')
          close = skip_comment(value, close, end);
        else
          ++close;
      }
      const Significant inside = significant_text(value, i + 1, close);
      mailbox.angle = true;
      mailbox.unclosed = close >= end;
      mailbox.address_begin = inside.first;
      mailbox.address_end = inside.last;
      if (inside.first == inside.last) mailbox.address_begin = mailbox.address_end = i + 1;
      mailbox.address = without_source_route(inside.text);
      std::size_t name_begin = begin, name_end = i;
      mailbox.display_name = std::string(trimmed(value, name_begin, name_end));
      return mailbox;
    } else {
      ++i;
    }
  }
  const Significant bare = significant_text(value, begin, end);
  if (bare.text.empty()) return std::nullopt;
  mailbox.address_begin = bare.first;
  mailbox.address_end = bare.last;
  mailbox.address = without_source_route(bare.text);
  return mailbox;
}

}  // namespace

std::vector<Mailbox> parse_mailbox_list(std::string_view value) {
  std::vector<Mailbox> mailboxes;
  auto take = [&](std::size_t begin, std::size_t end) {
    if (auto mailbox = parse_mailbox(value, begin, end); mailbox && !mailbox->address.empty())
      mailboxes.push_back(std::move(*mailbox));
  };
  std::size_t start = 0;
  bool in_angle = false;
  for (std::size_t i = 0; i < value.size();) {
    const char c = value[i];
    if (c == '(') {
      i = skip_comment(value, i, value.size());
      continue;
    }
    if (c == '"') {
      i = skip_quoted(value, i, value.size());
      continue;
    }
    if (c == '<') in_angle = true;
    if (c == '>') in_angle = false;
    if (!in_angle && (c == ',' || c == ';')) {
      take(start, i);
      start = i + 1;
    } else if (!in_angle && c == ':') {
      start = i + 1;  // a group's display name ends here; its members follow
    }
    ++i;
  }
  take(start, value.size());
  return mailboxes;
}

}  // namespace portrelay::smtp
