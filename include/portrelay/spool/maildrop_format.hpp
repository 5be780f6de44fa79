#pragma once
// What one file in the maildrop (maildrop.hpp) holds, and its parser: pure, and the first
// code to meet bytes that any local user may have written (fuzz/maildrop_fuzz.cpp).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/base/result.hpp"

namespace portrelay::spool {

struct DroppedMessage {
  std::string sender;  // "" is the null sender
  std::vector<std::string> recipients;
  bool eight_bit = false;  // BODY=8BITMIME
  std::string content;     // CRLF lines, not dot-stuffed
};

struct MaildropLimits {
  std::uint64_t max_content = 25ull << 20;  // [server] max_message_size
  std::size_t max_recipients = 1000;
};

// The file format, text up to the empty line, then the message as it goes into DATA:
//   portrelay-maildrop 1
//   sender <alice@example.com>        ("sender <>" for the null sender)
//   recipient <bob@example.com>       (one line each, at least one)
//   body 7bit|8bit
//   (empty line)
//   <content: CRLF lines, no bare CR or LF, no NUL>
std::string encode_dropped(const DroppedMessage& message);
// Every address must be one the SMTP server would accept in MAIL/RCPT; the content must be
// SMTP-safe as the server's DATA reader demands. The error says what is wrong.
Result<DroppedMessage> parse_dropped(std::string_view file, const MaildropLimits& limits);

}  // namespace portrelay::spool
