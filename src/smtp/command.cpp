#include "portrelay/smtp/command.hpp"

#include <array>
#include <cstring>

#include "portrelay/base/ascii.hpp"

namespace portrelay::smtp {
namespace {

// RFC 5321 4.5.3.1.3: a path including its angle brackets is at most 256 octets.
constexpr std::size_t kMaxPathLength = 256;

using ascii::iequals;
using ascii::upper;

bool is_control(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool is_8bit(char c) { return static_cast<unsigned char>(c) >= 0x80; }

// RFC 5322 atext; 8-bit octets are allowed for SMTPUTF8 (RFC 6531) mailboxes.
bool is_atext(char c) {
  return is_alnum(c) || is_8bit(c) ||
         (c != '\0' && std::strchr("!#$%&'*+-/=?^_`{|}~", c) != nullptr);
}

bool valid_dot_string(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c != '.' && !is_atext(c)) return false;
  }
  return true;
}

// `s` must be exactly one quoted string ("john doe"); backslash escapes one character.
bool valid_quoted_string(std::string_view s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  for (std::size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
      if (i + 1 >= s.size()) return false;  // the escape swallowed the closing quote
    } else if (s[i] == '"') {
      return false;
    }
  }
  return true;
}

bool valid_domain(std::string_view d) {
  if (d.empty()) return false;
  if (d.front() == '[') {
    // Address literal ([127.0.0.1], [IPv6:::1]): RFC 5321 dcontent.
    if (d.size() < 3 || d.back() != ']') return false;
    for (char c : d.substr(1, d.size() - 2)) {
      if (c == '[' || c == ']' || c == '\\' || c == ' ') return false;
    }
    return true;
  }
  std::size_t label = 0;
  for (char c : d) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (is_alnum(c) || c == '-' || c == '_' || is_8bit(c)) {
      ++label;
    } else {
      return false;
    }
  }
  return label > 0;
}

// RFC 5322 dot-atom-text: atoms joined by single dots (no leading, trailing or double dot).
bool valid_dot_atom(std::string_view s) {
  return valid_dot_string(s) && s.front() != '.' && s.back() != '.' &&
         s.find("..") == std::string_view::npos;
}

// A local part with no domain ("root"): a dot-atom, or one quoted string. An unquoted '@'
// is not atext, so "user@" and "@host" are refused here too.
bool valid_bare_local_part(std::string_view local) {
  return !local.empty() && local.front() == '"' ? valid_quoted_string(local)
                                                : valid_dot_atom(local);
}

// local-part "@" domain, where the local part may be quoted and so contain '@'.
bool valid_mailbox(std::string_view mailbox) {
  std::size_t at = mailbox.rfind('@');
  if (at == std::string_view::npos) return false;
  std::string_view local = mailbox.substr(0, at);
  std::string_view domain = mailbox.substr(at + 1);
  bool local_ok =
      !local.empty() && local.front() == '"' ? valid_quoted_string(local) : valid_dot_string(local);
  return local_ok && valid_domain(domain);
}

// Source route "@a,@b:" (RFC 5321 4.1.2 A-d-l): obsolete, parsed only to be discarded.
bool valid_source_route(std::string_view route) {
  std::size_t start = 0;
  while (start <= route.size()) {
    std::size_t comma = route.find(',', start);
    std::string_view hop =
        route.substr(start, comma == std::string_view::npos ? route.npos : comma - start);
    if (hop.size() < 2 || hop.front() != '@' || !valid_domain(hop.substr(1))) return false;
    if (comma == std::string_view::npos) return true;
    start = comma + 1;
  }
  return false;
}

bool parse_parameter(std::string_view token, Parameter& out) {
  std::size_t eq = token.find('=');
  std::string_view keyword = token.substr(0, eq);
  // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
  if (keyword.empty() || !is_alnum(keyword.front())) return false;
  for (char c : keyword) {
    if (!is_alnum(c) && c != '-') return false;
  }
  out.keyword = upper(keyword);
  out.value.clear();
  if (eq != std::string_view::npos) {
    // esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 (RFC 6531).
    std::string_view value = token.substr(eq + 1);
    if (value.empty() || value.find('=') != std::string_view::npos) return false;
    out.value.assign(value);
  }
  return true;
}

enum class PathKind { ReversePath, ForwardPath };

Result<PathArgument> parse_path_argument(std::string_view argument, std::string_view prefix,
                                         PathKind kind, BareLocalPart bare) {
  for (char c : argument) {
    if (is_control(c)) {
      return Error{"control character in argument"};
    }
  }
  if (!iequals(argument.substr(0, prefix.size()), prefix)) {
    return Error{"expected \"" + std::string(prefix) + "\""};
  }
  std::string_view rest = argument.substr(prefix.size());
  if (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (rest.empty() || rest.front() != '<') {
    return Error{"missing '<'"};
  }

  // Find the closing bracket; only a quoted local part may contain spaces or brackets.
  bool quoted = false;
  std::size_t close = std::string_view::npos;
  for (std::size_t i = 1; i < rest.size(); ++i) {
    char c = rest[i];
    if (quoted) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == '>') {
      close = i;
      break;
    } else if (c == '<') {
      return Error{"unbalanced '<'"};
    } else if (c == ' ') {
      return Error{"space in path"};
    }
  }
  if (close == std::string_view::npos) {
    return Error{"missing '>'"};
  }
  if (close + 1 > kMaxPathLength) {
    return Error{"path too long"};
  }

  std::string_view path = rest.substr(1, close - 1);
  std::string_view after = rest.substr(close + 1);
  if (!after.empty() && after.front() != ' ') {
    return Error{"unexpected character after '>'"};
  }

  if (!path.empty() && path.front() == '@') {
    std::size_t colon = path.find(':');
    if (colon == std::string_view::npos || !valid_source_route(path.substr(0, colon))) {
      return Error{"malformed source route"};
    }
    path.remove_prefix(colon + 1);
    if (path.empty()) {
      return Error{"empty mailbox after source route"};
    }
  }

  PathArgument result;
  if (path.empty()) {
    if (kind == PathKind::ForwardPath) {
      return Error{"null path not allowed for RCPT"};
    }
  } else if (kind == PathKind::ForwardPath && iequals(path, "postmaster")) {
    // RFC 5321 4.5.1: "<Postmaster>" without a domain must be accepted.
  } else if (!valid_mailbox(path) &&
             !(bare == BareLocalPart::Accepted && valid_bare_local_part(path))) {
    return Error{"malformed mailbox"};
  }
  result.address.assign(path);

  std::size_t pos = 0;
  while (pos < after.size()) {
    if (after[pos] == ' ') {
      ++pos;
      continue;
    }
    std::size_t end = after.find(' ', pos);
    if (end == std::string_view::npos) end = after.size();
    Parameter parameter;
    if (!parse_parameter(after.substr(pos, end - pos), parameter)) {
      return Error{"malformed parameter"};
    }
    result.parameters.push_back(std::move(parameter));
    pos = end;
  }
  return result;
}

struct VerbName {
  std::string_view name;
  Verb verb;
};

constexpr std::array<VerbName, 14> kVerbs{{
    {"HELO", Verb::Helo},
    {"EHLO", Verb::Ehlo},
    {"MAIL", Verb::Mail},
    {"RCPT", Verb::Rcpt},
    {"DATA", Verb::Data},
    {"RSET", Verb::Rset},
    {"NOOP", Verb::Noop},
    {"QUIT", Verb::Quit},
    {"VRFY", Verb::Vrfy},
    {"EXPN", Verb::Expn},
    {"HELP", Verb::Help},
    {"STARTTLS", Verb::Starttls},
    {"AUTH", Verb::Auth},
    {"BDAT", Verb::Bdat},
}};

}  // namespace

Command parse_command(std::string_view line) {
  Command command;
  std::size_t space = line.find(' ');
  command.verb_text = upper(line.substr(0, space));
  for (const VerbName& entry : kVerbs) {
    if (command.verb_text == entry.name) {
      command.verb = entry.verb;
      break;
    }
  }
  if (space != std::string_view::npos) {
    std::string_view argument = line.substr(space + 1);
    std::size_t last = argument.find_last_not_of(' ');
    command.argument.assign(argument.substr(0, last == std::string_view::npos ? 0 : last + 1));
  }
  return command;
}

const Parameter* PathArgument::find(std::string_view keyword) const {
  for (const Parameter& parameter : parameters) {
    if (iequals(parameter.keyword, keyword)) return &parameter;
  }
  return nullptr;
}

Result<PathArgument> parse_mail_from(std::string_view argument, BareLocalPart bare) {
  return parse_path_argument(argument, "FROM:", PathKind::ReversePath, bare);
}

Result<PathArgument> parse_rcpt_to(std::string_view argument, BareLocalPart bare) {
  return parse_path_argument(argument, "TO:", PathKind::ForwardPath, bare);
}

bool is_single_command_line(std::string_view line) {
  return line.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

}  // namespace portrelay::smtp
