#include "portrelay/smtp/header_rewrite.hpp"

#include <algorithm>
#include <optional>

#include "portrelay/base/ascii.hpp"
#include "portrelay/smtp/mailbox_list.hpp"

namespace portrelay::smtp {
namespace {

constexpr std::size_t kMaxLineOctets = 998;  // RFC 5322 2.1.1, without CRLF

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::string unfolded(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value)
    if (c != '\r' && c != '\n') out += c;
  return std::string(trim(out));
}

struct Splice {
  std::size_t begin, end;
  std::string text;
};

std::string apply(std::string_view value, std::vector<Splice> splices) {
  std::sort(splices.begin(), splices.end(),
            [](const Splice& a, const Splice& b) { return a.begin < b.begin; });
  std::string out;
  std::size_t at = 0;
  for (const Splice& splice : splices) {
    out.append(value.substr(at, splice.begin - at));
    out += splice.text;
    at = splice.end;
  }
  out.append(value.substr(at));
  return out;
}

std::string join(const std::vector<std::string>& addresses) {
  std::string out;
  for (const auto& address : addresses) {
    if (!out.empty()) out += ", ";
    out += address;
  }
  return out;
}

// `value` with each mapped address replaced by its targets; nullopt when nothing changed.
std::optional<std::string> map_recipients(std::string_view value, const HeaderRewrite& plan) {
  std::vector<Splice> splices;
  for (const Mailbox& mailbox : parse_mailbox_list(value)) {
    const std::vector<std::string> targets = plan.recipient_targets(mailbox.address);
    if (targets.empty() || (targets.size() == 1 && targets.front() == mailbox.address)) continue;
    if (targets.size() == 1 && !mailbox.unclosed)
      splices.push_back({mailbox.address_begin, mailbox.address_end, targets.front()});
    else
      splices.push_back({mailbox.begin, mailbox.end, join(targets)});
  }
  if (splices.empty()) return std::nullopt;
  return apply(value, std::move(splices));
}

// The new From value, or nullopt when no mailbox of it is to be rewritten.
std::optional<std::string> rewritten_from(std::string_view value, const HeaderRewrite& plan) {
  const std::vector<Mailbox> mailboxes = parse_mailbox_list(value);
  auto rewrites = [&](const Mailbox& mailbox) {
    return plan.every_from || (plan.is_local && plan.is_local(mailbox.address));
  };
  if (mailboxes.empty()) {
    if (!plan.every_from) return std::nullopt;
    return " " + (plan.from_mailbox.empty() ? plan.from_address : plan.from_mailbox);
  }
  if (!plan.from_mailbox.empty()) {
    if (std::none_of(mailboxes.begin(), mailboxes.end(), rewrites)) return std::nullopt;
    return " " + plan.from_mailbox;
  }
  std::vector<Splice> splices;
  for (const Mailbox& mailbox : mailboxes) {
    if (!rewrites(mailbox)) continue;
    if (mailbox.unclosed)  // no telling where its address ends: the mailbox goes whole
      splices.push_back({mailbox.begin, mailbox.end, plan.from_address});
    else
      splices.push_back({mailbox.address_begin, mailbox.address_end, plan.from_address});
  }
  if (splices.empty()) return std::nullopt;
  return apply(value, std::move(splices));
}

std::string field(std::string_view name, std::string_view value) {
  std::string text;
  text.reserve(name.size() + value.size() + 3);
  text.append(name);
  text += ':';
  text.append(value);
  text += "\r\n";
  fold_long_lines(text);
  return text;
}

}  // namespace

bool dkim_signature_covers(std::string_view signature_value, std::string_view field_name) {
  const std::string tags = unfolded(signature_value);
  std::string_view rest = tags;
  while (!rest.empty()) {
    const auto semicolon = rest.find(';');
    std::string_view tag = rest.substr(0, semicolon);
    rest = semicolon == std::string_view::npos ? std::string_view() : rest.substr(semicolon + 1);
    const auto equals = tag.find('=');
    if (equals == std::string_view::npos || trim(tag.substr(0, equals)) != "h") continue;
    std::string_view names = tag.substr(equals + 1);
    while (!names.empty()) {
      const auto colon = names.find(':');
      if (ascii::iequals(trim(names.substr(0, colon)), field_name)) return true;
      if (colon == std::string_view::npos) break;
      names.remove_prefix(colon + 1);
    }
  }
  return false;
}

void fold_long_lines(std::string& text) {
  std::size_t line_start = 0;
  while (line_start < text.size()) {
    std::size_t line_end = text.find("\r\n", line_start);
    if (line_end == std::string::npos) line_end = text.size();
    if (line_end - line_start <= kMaxLineOctets) {
      line_start = line_end + 2;
      continue;
    }
    // The last space at or before the limit that is not the line's first octet; the
    // space stays as the continuation line's leading whitespace.
    const std::size_t limit = line_start + kMaxLineOctets;
    std::size_t fold = text.rfind(' ', limit);
    if (fold == std::string::npos || fold <= line_start) {
      line_start = line_end + 2;  // nowhere to fold: left as written
      continue;
    }
    text.insert(fold, "\r\n");
    line_start = fold + 2;
  }
}

HeaderRewriteResult rewrite_header_section(std::string_view content, const HeaderSection& section,
                                           const HeaderRewrite& plan) {
  HeaderRewriteResult result;
  std::string& out = result.header;
  out.reserve(section.size + 256);
  bool has_reply_to = false, has_from = false, has_date = false, has_message_id = false;
  bool from_signed = false;
  std::size_t fields_end = 0;
  std::string original_from_value;
  for (const HeaderField& header : section.fields) {
    fields_end = static_cast<std::size_t>(header.text.data() + header.text.size() - content.data());
    std::optional<std::string> replaced;
    if (header.is("From")) {
      has_from = true;
      if (plan.rewrites_from() && (replaced = rewritten_from(header.value(), plan))) {
        if (!result.from_replaced) {
          original_from_value = std::string(header.value());
          result.original_from = unfolded(header.value());
        }
        result.from_replaced = true;
      }
    } else if (header.is("To") || header.is("Cc")) {
      if (plan.recipient_targets) replaced = map_recipients(header.value(), plan);
    } else if (header.is("Reply-To")) {
      has_reply_to = true;
    } else if (header.is("Date")) {
      has_date = true;
    } else if (header.is("Message-ID")) {
      has_message_id = true;
    } else if (header.is("DKIM-Signature")) {
      if (dkim_signature_covers(header.value(), "from")) from_signed = true;
    }
    if (replaced) {
      out += field(header.name, *replaced);
      result.changed = true;
    } else {
      out.append(header.text);
    }
  }
  if (!has_from && plan.rewrites_from() && plan.every_from) {
    out += field("From", " " + (plan.from_mailbox.empty() ? plan.from_address : plan.from_mailbox));
    result.changed = true;
  }
  if (result.from_replaced && plan.keep_reply_to && !has_reply_to) {
    std::optional<std::string> mapped;
    if (plan.recipient_targets) mapped = map_recipients(original_from_value, plan);
    out += field("Reply-To", mapped ? *mapped : original_from_value);
  }
  if (!has_date && plan.date) {
    out += field("Date", " " + plan.date());
    result.added_date = result.changed = true;
  }
  if (!has_message_id && plan.message_id) {
    out += field("Message-ID", " " + plan.message_id());
    result.added_message_id = result.changed = true;
  }
  result.changed = result.changed || result.from_replaced;
  result.dkim_signature_broken = result.from_replaced && from_signed;
  out.append(content.substr(fields_end, section.size - fields_end));
  return result;
}

}  // namespace portrelay::smtp
