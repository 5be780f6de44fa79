#pragma once
// Server-side DATA decoding: turns the bytes a client sends after "354" into message
// content, removing dot-stuffing and finding the end-of-data marker.
//
// Only <CRLF>.<CRLF> ends the data (the CRLF of the DATA command counts as the first
// CRLF, so ".\r\n" right away is an empty message). Bare LF and bare CR anywhere in the
// data are violations (SMTP smuggling defence): the reader keeps scanning for the real
// end marker, but the message must be rejected. Content is never emitted after a
// violation, so nothing ambiguous can be forwarded.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace portrelay::smtp {

class DataReader {
 public:
  enum class Violation { None, BareLf, BareCr, LineTooLong, TooBig };

  struct Limits {
    std::uint64_t max_message_size = 25u << 20;  // decoded content octets
    std::size_t max_line_length = 1000;          // including CRLF (RFC 5321 4.5.3.1.6)
  };

  explicit DataReader(Limits limits);

  // Consume bytes from `input`; returns how many were consumed. Consumption stops right
  // after the end marker: bytes after it belong to the next command (pipelining).
  // Decoded content (CRLF line endings, leading dot removed) is appended to `out`.
  std::size_t feed(std::string_view input, std::string& out);

  bool finished() const { return finished_; }
  Violation violation() const { return violation_; }
  // Decoded content octets so far (counted even after TooBig, so the caller can log it).
  std::uint64_t content_size() const { return content_size_; }

 private:
  Limits limits_;
  bool finished_ = false;
  Violation violation_ = Violation::None;
  std::uint64_t content_size_ = 0;
  // Implementation state (position within the current line, pending CR, etc.) lives
  // in private members added by the implementation.
  std::size_t line_length_ = 0;
  bool at_line_start_ = true;
  bool pending_cr_ = false;
  bool line_is_dot_only_candidate_ = false;
  bool dot_removed_ = false;
};

const char* to_string(DataReader::Violation violation);

// Client-side dot-stuffing: turns message content (CRLF lines) into DATA wire format.
class DotStuffer {
 public:
  // Append the wire form of `content` to `out`, adding a '.' before every line that
  // starts with '.'. May be called repeatedly with arbitrary chunk boundaries.
  void encode(std::string_view content, std::string& out);
  // Append the terminator: CRLF first if the content did not end with one, then ".\r\n".
  void finish(std::string& out);

 private:
  bool at_line_start_ = true;
  bool last_was_cr_ = false;
  bool ended_with_crlf_ = true;
};

}  // namespace portrelay::smtp
