#pragma once
// Server-side DATA decoding: turns the bytes a client sends after "354" into message
// content, removing dot-stuffing and finding the end-of-data marker.
//
// Only <CRLF>.<CRLF> ends the data (the CRLF of the DATA command counts as the first
// CRLF, so ".\r\n" right away is an empty message). Bare LF and bare CR anywhere in the
// data are violations (SMTP smuggling defence): the reader keeps scanning for the real
// end marker, but the message must be rejected. So is a NUL octet (RFC 5321 2.3.8 and
// RFC 6152 exclude it from text and 8BITMIME data): a receiver that drops NULs would turn
// "<CRLF>NUL.<CRLF>" or "<CRLF>.NUL<CRLF>" into an end of data. Content is never emitted
// after a violation, so nothing ambiguous can be forwarded.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace portrelay::smtp {

class DataReader {
 public:
  enum class Violation { None, BareLf, BareCr, Nul, LineTooLong, TooBig };

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
  // Where the previous byte left us; lets a CR or a leading dot at a chunk end wait for the
  // next chunk.
  enum class State {
    LineStart,   // after CRLF (or at the very start)
    LeadingDot,  // a line started with '.', which was dropped
    DotCr,       // ".\r" at line start: LF ends the data
    InLine,      // inside a line (also after a bare CR/LF, which never start a line)
    Cr,          // a CR inside a line, waiting for its LF
  };

  void emit(const char* data, std::size_t size, std::string& out);
  void emit_crlf(std::string& out);
  void flag(Violation violation);
  // Whether a new line of `octets` content octets plus CRLF stays within both limits.
  bool clean_line_fits(std::uint64_t octets) const;

  Limits limits_;
  bool finished_ = false;
  Violation violation_ = Violation::None;
  std::uint64_t content_size_ = 0;
  State state_ = State::LineStart;
  std::size_t line_length_ = 0;  // decoded octets of the current line, without CRLF
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
  bool at_line_start_ = true;  // also "content so far ends with CRLF (or is empty)"
  bool last_was_cr_ = false;
};

}  // namespace portrelay::smtp
