#include "portrelay/spool/bounce_message.hpp"

#include <cstdio>
#include <ctime>

#include "portrelay/base/ascii.hpp"

namespace portrelay::spool {
namespace {

constexpr std::string_view kCrlf = "\r\n";
// Longest diagnostic or address we copy: with the longest field name in front it stays far
// below the 998-octet line limit (RFC 5322 2.1.1), whatever the upstream sent.
constexpr std::size_t kMaxValue = 900;
// Lines of the delivery-status fields are folded at spaces to stay readable.
constexpr std::size_t kFoldAt = 78;
constexpr std::size_t kMaxLine = 998;

bool lower_equal(std::string_view a, std::string_view b) { return ascii::iequals(a, b); }

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// One line of printable US-ASCII: line ends and other controls become spaces, octets >= 0x80
// become '?', and text beyond `max` octets is cut and marked.
std::string one_line(std::string_view text, std::size_t max = kMaxValue) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x80)
      out += '?';
    else if (c < 0x20 || c == 0x7f)
      out += ' ';
    else
      out += static_cast<char>(c);
  }
  out = std::string(trim(out));
  if (out.size() > max) out = out.substr(0, max - 3) + "...";
  return out;
}

// "Name: value" folded before spaces so that lines stay under kFoldAt where the value allows;
// a value without spaces stays on one line (one_line() keeps it under 998).
std::string folded_field(std::string_view name, std::string_view value) {
  std::string out(name);
  out += ": ";
  std::size_t line_length = out.size();
  std::size_t position = 0;
  while (position < value.size()) {
    auto space = value.find(' ', position + 1);
    std::size_t end = space == std::string_view::npos ? value.size() : space;
    std::string_view word = value.substr(position, end - position);  // starts with ' ' unless first
    // Never before a lone space: a continuation line of only white space is obsolete syntax.
    if (position > 0 && word.size() > 1 && line_length + word.size() > kFoldAt) {
      out += kCrlf;  // the word's leading space becomes the continuation's indentation
      line_length = 0;
    }
    out += word;
    line_length += word.size();
    position = end;
  }
  out += kCrlf;
  return out;
}

// RFC 5322 date-time in UTC, English names whatever the locale.
std::string rfc5322_date(std::int64_t unix_ms) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[64];
  std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[utc.tm_wday],
                utc.tm_mday, kMonths[utc.tm_mon], utc.tm_year + 1900, utc.tm_hour, utc.tm_min,
                utc.tm_sec);
  return text;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// "class.subject.detail" (RFC 3463): class 2, 4 or 5, then 1-3 digits, then 1-3 digits.
bool valid_status(std::string_view status) {
  if (status.size() < 5 || (status[0] != '2' && status[0] != '4' && status[0] != '5') ||
      status[1] != '.')
    return false;
  std::size_t position = 2;
  for (int part = 0; part < 2; ++part) {
    std::size_t digits = 0;
    while (position < status.size() && is_digit(status[position])) ++position, ++digits;
    if (digits == 0 || digits > 3) return false;
    if (part == 0) {
      if (position >= status.size() || status[position] != '.') return false;
      ++position;
    }
  }
  return position == status.size();
}

std::string derived_status(const BounceRecipient& recipient) {
  if (valid_status(recipient.status)) return recipient.status;
  std::string_view diagnostic = trim(recipient.diagnostic);
  // "550 5.1.1 text" or "550-5.1.1 text": the enhanced code follows the reply code.
  if (diagnostic.size() >= 3 && is_digit(diagnostic[0]) && is_digit(diagnostic[1]) &&
      is_digit(diagnostic[2])) {
    if (diagnostic.size() > 4 && (diagnostic[3] == ' ' || diagnostic[3] == '-')) {
      auto rest = diagnostic.substr(4);
      auto code = rest.substr(0, rest.find(' '));
      if (valid_status(code) && code[0] == diagnostic[0]) return std::string(code);
    }
    if (diagnostic[0] == '5') return "5.0.0";
    if (diagnostic[0] == '4') return "4.0.0";
  }
  return recipient.action == "delayed" ? "4.0.0" : "5.0.0";
}

std::string action_of(const BounceRecipient& recipient) {
  for (std::string_view known : {"failed", "delayed", "delivered", "relayed", "expanded"})
    if (lower_equal(recipient.action, known)) return std::string(known);
  return "failed";
}

// The original's header section as a 7-bit text/rfc822-headers part: CRLF line ends,
// controls other than TAB and 8-bit octets replaced, lines cut at 998 octets, ending in CRLF.
std::string clean_headers(std::string_view headers) {
  std::string out;
  std::size_t line_length = 0;
  for (std::size_t i = 0; i < headers.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(headers[i]);
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < headers.size() && headers[i + 1] == '\n') ++i;
      out += kCrlf;
      line_length = 0;
      continue;
    }
    if (line_length >= kMaxLine) continue;
    out += c >= 0x80 || (c < 0x20 && c != '\t') || c == 0x7f ? '?' : static_cast<char>(c);
    ++line_length;
  }
  if (!out.empty() && !out.ends_with(kCrlf)) out += kCrlf;
  return out;
}

// Queue ids are ours, but keep only what a boundary or Message-ID may hold.
std::string token(std::string_view text, std::size_t max = 40) {
  std::string out;
  for (char c : text)
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-')
      out += c;
  if (out.size() > max) out.resize(max);
  return out.empty() ? "none" : out;
}

std::string human_part(const BounceInput& input, const std::string& reporting_mta) {
  bool all_delayed = !input.recipients.empty();
  for (const auto& recipient : input.recipients)
    if (action_of(recipient) != "delayed") all_delayed = false;
  std::string text;
  text += "This is the mail system at host " + reporting_mta + "." + std::string(kCrlf);
  text += kCrlf;
  text += "Your message (queue id " + one_line(input.queue_id, 100) + ", accepted " +
          rfc5322_date(input.arrival_ms) + ")" + std::string(kCrlf);
  if (all_delayed)
    text += "has not yet been delivered to the recipients below. It is still being";
  else
    text += "could not be delivered to the recipients below.";
  text += kCrlf;
  if (all_delayed) text += "retried; you do not need to send it again." + std::string(kCrlf);
  std::string reason = one_line(input.reason);
  if (!reason.empty()) text += "Reason: " + reason + std::string(kCrlf);
  text += kCrlf;
  for (const auto& recipient : input.recipients) {
    text += "<" + one_line(recipient.address) + ">: " + action_of(recipient) + " (" +
            derived_status(recipient) + ")" + std::string(kCrlf);
    std::string remote = one_line(recipient.remote_mta, 255);
    std::string diagnostic = one_line(recipient.diagnostic);
    if (!remote.empty()) text += "    host " + remote + " said:" + std::string(kCrlf);
    if (!diagnostic.empty())
      text += "    " + diagnostic + std::string(kCrlf);
    else if (remote.empty())
      text += "    no mail server answered" + std::string(kCrlf);
  }
  text += kCrlf;
  text += "The header section of your message is attached." + std::string(kCrlf);
  return text;
}

std::string status_part(const BounceInput& input, const std::string& reporting_mta) {
  std::string text;
  text += "Reporting-MTA: dns; " + reporting_mta + std::string(kCrlf);
  // Original-Envelope-Id is the submitter's ENVID (RFC 3461), not our queue id.
  text += "X-Portrelay-Queue-ID: " + one_line(input.queue_id, 100) + std::string(kCrlf);
  text += "Arrival-Date: " + rfc5322_date(input.arrival_ms) + std::string(kCrlf);
  for (const auto& recipient : input.recipients) {
    text += kCrlf;
    text += "Final-Recipient: rfc822; " + one_line(recipient.address) + std::string(kCrlf);
    text += "Action: " + action_of(recipient) + std::string(kCrlf);
    text += "Status: " + derived_status(recipient) + std::string(kCrlf);
    std::string remote = one_line(recipient.remote_mta, 255);
    if (!remote.empty()) text += "Remote-MTA: dns; " + remote + std::string(kCrlf);
    std::string diagnostic = one_line(recipient.diagnostic);
    if (!diagnostic.empty()) text += folded_field("Diagnostic-Code", "smtp; " + diagnostic);
  }
  return text;
}

std::string subject_for(const BounceInput& input) {
  bool any_failed = false, any_delayed = false;
  for (const auto& recipient : input.recipients) {
    auto action = action_of(recipient);
    if (action == "failed") any_failed = true;
    if (action == "delayed") any_delayed = true;
  }
  if (any_failed && !any_delayed) return "Undelivered Mail Returned to Sender";
  if (any_delayed && !any_failed) return "Delayed Mail (still being retried)";
  return "Delivery Status Notification";
}

}  // namespace

std::string build_bounce(const BounceInput& input) {
  std::string reporting_mta = one_line(input.reporting_mta, 255);
  if (reporting_mta.empty()) reporting_mta = "localhost";
  const std::string human = human_part(input, reporting_mta);
  const std::string status = status_part(input, reporting_mta);
  const std::string headers = clean_headers(input.original_headers);

  // RFC 2046 5.1.1: the boundary must not appear in any encapsulated part. Derived from the
  // queue id and the time, it almost never does; when it does, a counter changes it.
  const std::string base = "=_portrelay_" + token(input.queue_id) + "_" +
                           std::to_string(input.now_ms < 0 ? 0 : input.now_ms);
  std::string boundary = base;
  for (unsigned n = 1;
       human.find(boundary) != std::string::npos || status.find(boundary) != std::string::npos ||
       headers.find(boundary) != std::string::npos;
       ++n)
    boundary = base + "_" + std::to_string(n);

  std::string message;
  message +=
      "From: Mail Delivery System <MAILER-DAEMON@" + reporting_mta + ">" + std::string(kCrlf);
  message += "To: <" + one_line(input.original_sender) + ">" + std::string(kCrlf);
  message += "Subject: " + subject_for(input) + std::string(kCrlf);
  message += "Date: " + rfc5322_date(input.now_ms) + std::string(kCrlf);
  message += "Message-ID: <" + std::to_string(input.now_ms) + "." + token(input.queue_id) +
             ".dsn@" + reporting_mta + ">" + std::string(kCrlf);
  message += "MIME-Version: 1.0" + std::string(kCrlf);
  message += "Auto-Submitted: auto-replied" + std::string(kCrlf);
  message += "Content-Type: multipart/report; report-type=delivery-status;" + std::string(kCrlf);
  message += "\tboundary=\"" + boundary + "\"" + std::string(kCrlf);
  message += kCrlf;
  message += "This is a MIME-encapsulated message." + std::string(kCrlf);
  message += kCrlf;

  auto part = [&](std::string_view content_type, std::string_view description,
                  const std::string& content) {
    message += "--" + boundary + std::string(kCrlf);
    message += "Content-Type: " + std::string(content_type) + std::string(kCrlf);
    message += "Content-Description: " + std::string(description) + std::string(kCrlf);
    message += kCrlf;
    message += content;
    message += kCrlf;  // belongs to the next delimiter (RFC 2046 5.1.1)
  };
  part("text/plain; charset=us-ascii", "Notification", human);
  part("message/delivery-status", "Delivery report", status);
  part("text/rfc822-headers", "Undelivered message headers", headers);
  message += "--" + boundary + "--" + std::string(kCrlf);
  return message;
}

std::string header_section(std::string_view body, std::size_t max) {
  std::size_t end = body.size();
  for (std::size_t line = 0; line < body.size();) {
    auto newline = body.find('\n', line);
    std::string_view text = body.substr(
        line, newline == std::string_view::npos ? std::string_view::npos : newline - line);
    if (text.empty() || text == "\r") {
      end = line;
      break;
    }
    if (newline == std::string_view::npos) break;
    line = newline + 1;
  }
  if (end <= max) return std::string(body.substr(0, end));
  auto last = body.substr(0, max).rfind('\n');
  return last == std::string_view::npos ? std::string() : std::string(body.substr(0, last + 1));
}

namespace {

// The unfolded value of each field called `name` in a header section.
std::vector<std::string> field_values(std::string_view headers, std::string_view name) {
  std::vector<std::string> values;
  std::string* current = nullptr;
  std::size_t position = 0;
  while (position < headers.size()) {
    auto newline = headers.find('\n', position);
    std::string_view line = headers.substr(
        position, newline == std::string_view::npos ? std::string_view::npos : newline - position);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    position = newline == std::string_view::npos ? headers.size() : newline + 1;
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      if (current) *current += " " + std::string(trim(line));
      continue;
    }
    current = nullptr;
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    if (lower_equal(trim(line.substr(0, colon)), name)) {
      values.emplace_back(trim(line.substr(colon + 1)));
      current = &values.back();
    }
  }
  return values;
}

// Content-Type "multipart/report; report-type=delivery-status" in any case, spacing or
// quoting of the parameter value.
bool is_delivery_report(std::string_view content_type) {
  std::string value = lower(content_type);
  std::string_view rest = value;
  auto semicolon = rest.find(';');
  if (trim(rest.substr(0, semicolon)) != "multipart/report") return false;
  while (semicolon != std::string_view::npos) {
    rest = rest.substr(semicolon + 1);
    semicolon = rest.find(';');
    std::string_view parameter = trim(rest.substr(0, semicolon));
    auto equals = parameter.find('=');
    if (equals == std::string_view::npos) continue;
    std::string_view key = trim(parameter.substr(0, equals));
    std::string_view val = trim(parameter.substr(equals + 1));
    if (val.size() >= 2 && val.front() == '"' && val.back() == '"')
      val = val.substr(1, val.size() - 2);
    if (key == "report-type" && val == "delivery-status") return true;
  }
  return false;
}

bool mentions_mailer_daemon(std::string_view text) {
  return lower(text).find("mailer-daemon") != std::string::npos;
}

}  // namespace

bool is_bounce(std::string_view sender, std::string_view headers) {
  if (sender.empty()) return true;
  for (const auto& content_type : field_values(headers, "Content-Type"))
    if (is_delivery_report(content_type)) return true;
  bool auto_replied = false;
  for (const auto& value : field_values(headers, "Auto-Submitted"))
    if (lower(value).starts_with("auto-replied")) auto_replied = true;
  if (!auto_replied) return false;
  auto at = sender.rfind('@');
  if (mentions_mailer_daemon(sender.substr(0, at))) return true;
  for (const auto& from : field_values(headers, "From"))
    if (mentions_mailer_daemon(from)) return true;
  return false;
}

}  // namespace portrelay::spool
