#pragma once
// A message as sendmail(8) takes it on stdin, made ready for SMTP submission.
#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/smtp/origination_fields.hpp"

namespace portrelay::submit {

struct ReadMessage {
  std::string content;     // CRLF line endings, ends with CRLF unless empty
  bool too_big = false;    // stopped reading at the limit; `content` is incomplete
  bool eight_bit = false;  // some octet >= 0x80 (BODY=8BITMIME is due)
};

// Reads the message from `in` until EOF or, when `lone_dot_ends` (sendmail without -i), a line
// that is only ".". Line ends become CRLF whatever they were (LF, CRLF, and a bare CR such as
// a progress bar in cron output, which SMTP cannot carry and the relay would refuse whole).
// Stops at `max_octets` with `too_big` set.
ReadMessage read_message(std::istream& in, bool lone_dot_ends, std::uint64_t max_octets);

// Header fields and body of a message, with the edits sendmail makes before submitting.
class Message {
 public:
  // `content` has CRLF line endings. The header section is the leading run of lines that look
  // like fields ("Name: value") or continue one; it ends at the first empty line, or before
  // the first line that is neither (then an empty line is put there: a message that starts
  // with "hello" is all body).
  static Message parse(std::string_view content);

  bool has_field(std::string_view name) const;  // field names compare case-insensitively
  // Each field's value, unfolded (continuation line breaks removed), in order.
  std::vector<std::string> field_values(std::string_view name) const;
  void remove_fields(std::string_view name);
  // Appended to the header section; `value` must be one line.
  void add_field(std::string_view name, std::string_view value);

  // Header section, empty line, body. Lines longer than SMTP's 998 octets are broken: a header
  // field is folded (continuation starts with a space), a body line is split, as Postfix does.
  std::string render() const;

 private:
  struct Field {
    std::string name;  // as written
    std::string text;  // the whole field, folded lines and CRLFs included
  };
  std::vector<Field> fields_;
  std::string body_;  // after the empty line
};

// Date and Message-ID values, shared with the daemon's add_missing_headers.
using smtp::format_date_now;
using smtp::make_message_id;
// `Full Name <address>`, quoting the name when it has characters an atom cannot hold.
std::string format_mailbox(std::string_view full_name, std::string_view address);

}  // namespace portrelay::submit
