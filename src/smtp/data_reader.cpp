#include "portrelay/smtp/data_reader.hpp"

#include <algorithm>

namespace portrelay::smtp {

DataReader::DataReader(Limits limits) : limits_(limits) {}

void DataReader::flag(Violation violation) {
  if (violation_ == Violation::None) violation_ = violation;
}

// Appends ordinary line content. Behaves exactly as if called once per byte, so the
// output and the violation do not depend on how the input was chunked.
void DataReader::emit(const char* data, std::size_t size, std::string& out) {
  if (violation_ == Violation::None) {
    std::uint64_t line_room = 0;  // content octets that still fit on this line (CRLF reserved)
    if (limits_.max_line_length >= line_length_ + 2) {
      line_room = limits_.max_line_length - line_length_ - 2;
    }
    std::uint64_t size_room = 0;
    if (limits_.max_message_size >= content_size_) {
      size_room = limits_.max_message_size - content_size_;
    }
    std::uint64_t fits = std::min<std::uint64_t>({size, line_room, size_room});
    out.append(data, static_cast<std::size_t>(fits));
    if (fits < size) flag(line_room <= size_room ? Violation::LineTooLong : Violation::TooBig);
  }
  line_length_ += size;
  content_size_ += size;
}

void DataReader::emit_crlf(std::string& out) {
  if (violation_ == Violation::None) {
    if (line_length_ + 2 > limits_.max_line_length) {
      flag(Violation::LineTooLong);
    } else if (content_size_ + 2 > limits_.max_message_size) {
      flag(Violation::TooBig);
    } else {
      out += "\r\n";
    }
  }
  line_length_ = 0;
  content_size_ += 2;
}

std::size_t DataReader::feed(std::string_view input, std::string& out) {
  static constexpr char kCr = '\r';
  static constexpr char kLf = '\n';
  std::size_t i = 0;
  while (i < input.size() && !finished_) {
    const char c = input[i];
    switch (state_) {
      case State::LineStart:
        // The leading dot is dropped, not counted: RFC 5321 4.5.2 transparency.
        if (c == '.') {
          state_ = State::LeadingDot;
          ++i;
        } else {
          state_ = State::InLine;
        }
        break;
      case State::LeadingDot:
        if (c == kCr) {
          state_ = State::DotCr;
          ++i;
        } else {
          state_ = State::InLine;
        }
        break;
      case State::DotCr:
        if (c == kLf) {
          finished_ = true;
          ++i;
          break;
        }
        [[fallthrough]];
      case State::Cr:
        if (c == kLf) {
          emit_crlf(out);
          state_ = State::LineStart;
          ++i;
        } else {
          // Not consumed: the byte after a bare CR is processed inside the line. A bare CR
          // never starts a new line, so "\r.\r\n" cannot end the data.
          flag(Violation::BareCr);
          emit(&kCr, 1, out);
          state_ = State::InLine;
        }
        break;
      case State::InLine: {
        std::size_t end = i;
        while (end < input.size() && input[end] != kCr && input[end] != kLf) ++end;
        if (end > i) {
          emit(input.data() + i, end - i, out);
          i = end;
        } else if (c == kCr) {
          state_ = State::Cr;
          ++i;
        } else {
          // A bare LF does not end the line either: "\n.\r\n" is not an end marker.
          flag(Violation::BareLf);
          emit(&kLf, 1, out);
          ++i;
        }
        break;
      }
    }
  }
  return i;
}

const char* to_string(DataReader::Violation violation) {
  switch (violation) {
    case DataReader::Violation::None:
      return "none";
    case DataReader::Violation::BareLf:
      return "bare_lf";
    case DataReader::Violation::BareCr:
      return "bare_cr";
    case DataReader::Violation::LineTooLong:
      return "line_too_long";
    case DataReader::Violation::TooBig:
      return "too_big";
  }
  return "unknown";
}

void DotStuffer::encode(std::string_view content, std::string& out) {
  std::size_t copied = 0;
  for (std::size_t i = 0; i < content.size(); ++i) {
    const char c = content[i];
    if (at_line_start_ && c == '.') {
      out.append(content.data() + copied, i - copied);
      out.push_back('.');
      copied = i;
    }
    at_line_start_ = c == '\n' && last_was_cr_;
    last_was_cr_ = c == '\r';
  }
  out.append(content.data() + copied, content.size() - copied);
}

void DotStuffer::finish(std::string& out) {
  if (!at_line_start_) out += "\r\n";
  out += ".\r\n";
  *this = DotStuffer{};
}

}  // namespace portrelay::smtp
