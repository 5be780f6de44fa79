#pragma once
// SMTP replies: formatting (server side) and incremental parsing (client side).
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portrelay::smtp {

struct Reply {
  int code = 0;                    // three-digit reply code, e.g. 250
  std::string enhanced;            // RFC 3463 code from the first line ("2.1.0"), empty if none
  std::vector<std::string> lines;  // text of each line after "NNN-" / "NNN ", verbatim

  bool positive() const { return code >= 200 && code < 400; }
  bool success() const { return code >= 200 && code < 300; }  // 2xx: the command was done
  // 1xx/3xx where a final answer was due: the server is not following the protocol.
  bool unexpected() const { return !success() && !transient() && !permanent(); }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }
  // First line without the enhanced code prefix, e.g. "Ok: queued as 4F2".
  std::string message() const;
  // One-line rendering for logs: "250 2.0.0 Ok: queued as 4F2".
  std::string summary() const;
};

// A one-line reply as produced locally: make_reply(250, "2.0.0", "Ok").
Reply make_reply(int code, std::string_view enhanced, std::string_view text);

// "250 2.0.0 Ok\r\n". `enhanced` may be empty. `text` must not contain CR or LF.
std::string format_reply(int code, std::string_view enhanced, std::string_view text);
// Multi-line reply: "250-first\r\n250-second\r\n250 last\r\n". `lines` must not be empty.
std::string format_multiline_reply(int code, const std::vector<std::string>& lines);
// Render a parsed reply back to wire form (used to pass an upstream's answer to the client).
std::string format_reply(const Reply& reply);

// Incremental parser for replies read from an SMTP server. Accepts CRLF line endings
// (a bare LF is tolerated as a line ending). Malformed input puts the parser in an error
// state: the connection should be treated as a protocol failure.
class ReplyParser {
 public:
  static constexpr std::size_t kMaxLineLength = 4096;  // per reply line, generous
  static constexpr std::size_t kMaxLines = 256;        // per reply

  void feed(std::string_view bytes);
  // Next complete reply, if one is buffered.
  std::optional<Reply> next();
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  // Bytes received but not yet part of a returned reply.
  std::size_t buffered() const { return buffer_.size() - consumed_; }
  // Forget everything buffered (RFC 3207: plaintext received before TLS must be dropped).
  void clear();

 private:
  std::nullopt_t fail(std::string reason);

  std::string buffer_;
  std::size_t consumed_ = 0;    // start of the reply being assembled
  std::size_t line_start_ = 0;  // start of the next line not yet parsed
  std::size_t scan_pos_ = 0;    // searched for LF up to here: avoids rescanning partial lines
  Reply pending_;               // lines of a multi-line reply received so far
  std::string error_;
};

}  // namespace portrelay::smtp
