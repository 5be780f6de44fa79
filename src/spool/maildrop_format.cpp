#include "portrelay/spool/maildrop_format.hpp"

#include <optional>

#include "portrelay/smtp/command.hpp"

namespace portrelay::spool {
namespace {

constexpr std::string_view kMagic = "portrelay-maildrop 1";
constexpr std::size_t kMaxEnvelopeLine = 1024;  // "recipient <" + 256 octets + ">" fits

// Takes "<address>" off `line` after `keyword `; the address as the SMTP server would take it.
Result<std::string> path_after(std::string_view line, std::string_view keyword, bool sender) {
  if (line.substr(0, keyword.size()) != keyword || line.size() <= keyword.size() ||
      line[keyword.size()] != ' ')
    return Error{"expected '" + std::string(keyword) + " <address>'"};
  const std::string path(line.substr(keyword.size() + 1));
  auto parsed = sender ? smtp::parse_mail_from("FROM:" + path) : smtp::parse_rcpt_to("TO:" + path);
  if (!parsed) return Error{std::string(keyword) + " " + parsed.error().message};
  if (!parsed->parameters.empty()) return Error{std::string(keyword) + " has parameters"};
  return parsed->address;
}

// What the server's DATA reader would refuse: NUL, a CR not before LF, an LF not after CR.
std::optional<std::string> unsafe_content(std::string_view content) {
  for (std::size_t i = 0; i < content.size(); ++i) {
    const char c = content[i];
    if (c == '\0') return "NUL in the message";
    if (c == '\r' && (i + 1 >= content.size() || content[i + 1] != '\n'))
      return "bare CR in the message";
    if (c == '\n' && (i == 0 || content[i - 1] != '\r')) return "bare LF in the message";
  }
  if (!content.empty() && !content.ends_with("\r\n")) return "the message does not end in CRLF";
  return std::nullopt;
}

}  // namespace

std::string encode_dropped(const DroppedMessage& message) {
  std::string out(kMagic);
  out += "\nsender <" + message.sender + ">\n";
  for (const auto& recipient : message.recipients) out += "recipient <" + recipient + ">\n";
  out += message.eight_bit ? "body 8bit\n\n" : "body 7bit\n\n";
  out += message.content;
  return out;
}

Result<DroppedMessage> parse_dropped(std::string_view file, const MaildropLimits& limits) {
  DroppedMessage message;
  auto next_line = [&file](std::string& line) {
    const auto end = file.find('\n');
    if (end == std::string_view::npos || end > kMaxEnvelopeLine) return false;
    line.assign(file.substr(0, end));
    file.remove_prefix(end + 1);
    return true;
  };
  std::string line;
  if (!next_line(line) || line != kMagic) return Error{"not a maildrop file (bad first line)"};
  if (!next_line(line)) return Error{"no sender line, or one over 1024 octets"};
  auto sender = path_after(line, "sender", true);
  if (!sender) return sender.error();
  message.sender = std::move(*sender);
  bool body_seen = false;
  while (next_line(line)) {
    if (line.empty()) {
      if (!body_seen) return Error{"no body line"};
      if (message.recipients.empty()) return Error{"no recipient"};
      if (file.size() > limits.max_content)
        return Error{"message of " + std::to_string(file.size()) + " octets is over the " +
                     std::to_string(limits.max_content) + "-octet limit"};
      if (auto unsafe = unsafe_content(file)) return Error{*unsafe};
      message.content.assign(file);
      return message;
    }
    if (body_seen) return Error{"a line after the body line"};
    if (line == "body 7bit" || line == "body 8bit") {
      body_seen = true;
      message.eight_bit = line == "body 8bit";
      continue;
    }
    if (message.recipients.size() >= limits.max_recipients)
      return Error{"more than " + std::to_string(limits.max_recipients) + " recipients"};
    auto recipient = path_after(line, "recipient", false);
    if (!recipient) return recipient.error();
    message.recipients.push_back(std::move(*recipient));
  }
  return Error{"the envelope does not end (no empty line, or a line over 1024 octets)"};
}

}  // namespace portrelay::spool
