#include "portrelay/submit/address_list.hpp"

namespace portrelay::submit {
namespace {

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return "";
  const auto last = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(first, last - first + 1));
}

// One mailbox's text ("Name <a@b>", "a@b (comment)") -> its addr-spec, or "" if none.
std::string address_of_mailbox(std::string_view mailbox) {
  // Inside angle brackets, when there are any outside quotes and comments.
  std::string bare;  // the mailbox with comments and quoted strings removed
  std::string angle;
  bool in_angle = false, seen_angle = false;
  int comment_depth = 0;
  bool in_quotes = false;
  for (std::size_t i = 0; i < mailbox.size(); ++i) {
    const char c = mailbox[i];
    if (in_quotes) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_quotes = false;
      if (in_angle) angle += c;  // a quoted local part inside <...> is part of the address
      continue;
    }
    if (comment_depth > 0) {
      if (c == '\\')
        ++i;
      else if (c == '(')
        ++comment_depth;
      else if (c == ')')
        --comment_depth;
      continue;
    }
    if (c == '(') {
      ++comment_depth;
    } else if (c == '"') {
      in_quotes = true;
      if (in_angle) angle += c;
    } else if (c == '<') {
      in_angle = true;
      seen_angle = true;
      angle.clear();
    } else if (c == '>') {
      in_angle = false;
    } else if (in_angle) {
      angle += c;
    } else {
      bare += c;
    }
  }
  std::string address = trim(seen_angle ? angle : bare);
  // An obsolete source route "@a,@b:user@c" keeps only the mailbox.
  if (!address.empty() && address.front() == '@') {
    const auto colon = address.find(':');
    address = colon == std::string::npos ? "" : address.substr(colon + 1);
  }
  // Whitespace inside an unquoted addr-spec is folding; remove it.
  std::string compact;
  for (char c : address)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') compact += c;
  return compact;
}

}  // namespace

std::vector<std::string> parse_address_list(std::string_view value) {
  std::vector<std::string> addresses;
  std::string current;
  bool in_quotes = false, in_angle = false;
  int comment_depth = 0;
  auto flush = [&] {
    std::string address = address_of_mailbox(current);
    if (!address.empty()) addresses.push_back(std::move(address));
    current.clear();
  };
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (in_quotes || comment_depth > 0) {
      current += c;
      if (c == '\\' && i + 1 < value.size()) {
        current += value[++i];
      } else if (in_quotes && c == '"') {
        in_quotes = false;
      } else if (!in_quotes && c == '(') {
        ++comment_depth;
      } else if (!in_quotes && c == ')') {
        --comment_depth;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_quotes = true;
        current += c;
        break;
      case '(':
        comment_depth = 1;
        current += c;
        break;
      case '<':
        in_angle = true;
        current += c;
        break;
      case '>':
        in_angle = false;
        current += c;
        break;
      case ':':
        // "group-name:" starts a group; a colon inside <...> is a source route.
        if (in_angle)
          current += c;
        else
          current.clear();
        break;
      case ',':
      case ';':  // ';' ends a group
        if (in_angle)
          current += c;
        else
          flush();
        break;
      default:
        current += c;
    }
  }
  flush();
  return addresses;
}

std::string qualify_address(std::string_view address, std::string_view domain) {
  if (address.empty() || domain.empty()) return std::string(address);
  if (address.find('@') != std::string_view::npos) return std::string(address);
  return std::string(address) + "@" + std::string(domain);
}

}  // namespace portrelay::submit
