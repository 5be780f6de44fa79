#include "portrelay/smtp/data_reader.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

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

namespace {

constexpr char kCr = '\r';
constexpr char kLf = '\n';
constexpr char kNul = '\0';

// Finds the next CR, LF and NUL at or after a position that only moves forward. A search
// is repeated only once the position has passed its last hit, so each of the three
// searches reads every byte at most once, even when the input is full of bare CRs.
class LineBreakFinder {
 public:
  explicit LineBreakFinder(std::string_view input) : input_(input) {}

  // Both return input.size() when there is none.
  std::size_t next_cr(std::size_t from) { return next(kCr, from, cr_); }
  std::size_t next_lf(std::size_t from) { return next(kLf, from, lf_); }
  std::size_t next_nul(std::size_t from) { return next(kNul, from, nul_); }

 private:
  static constexpr std::size_t kUnknown = SIZE_MAX;

  std::size_t next(char c, std::size_t from, std::size_t& cached) {
    if (cached == kUnknown || cached < from) {
      const void* hit = from < input_.size()
                            ? std::memchr(input_.data() + from, c, input_.size() - from)
                            : nullptr;
      cached = hit ? static_cast<std::size_t>(static_cast<const char*>(hit) - input_.data())
                   : input_.size();
    }
    return cached;
  }

  std::string_view input_;
  std::size_t cr_ = kUnknown;
  std::size_t lf_ = kUnknown;
  std::size_t nul_ = kUnknown;
};

}  // namespace

bool DataReader::clean_line_fits(std::uint64_t octets) const {
  const std::uint64_t with_crlf = octets + 2;
  return with_crlf <= limits_.max_line_length && content_size_ <= limits_.max_message_size &&
         with_crlf <= limits_.max_message_size - content_size_;
}

std::size_t DataReader::feed(std::string_view input, std::string& out) {
  const char* const data = input.data();
  LineBreakFinder breaks(input);
  std::size_t i = 0;
  // [pending, i) is decoded content already checked and counted but not yet appended:
  // clean lines are collected here and appended in one go. Anything that emits on its own
  // (the byte-wise states below) appends this first, so the order is kept.
  std::size_t pending = 0;
  while (i < input.size() && !finished_) {
    // Fast path: at the start of a line's content, a whole CRLF-terminated line without
    // bare CR/LF or NUL that fits both limits decodes to itself. That is what the byte-wise states
    // would produce too; it just skips them.
    const bool content_starts = (state_ == State::LineStart && data[i] != '.') ||
                                (state_ == State::LeadingDot && data[i] != kCr);
    if (content_starts && violation_ == Violation::None) {
      const std::size_t lf = breaks.next_lf(i);
      if (lf < input.size() && lf > i && breaks.next_cr(i) == lf - 1 && breaks.next_nul(i) > lf &&
          clean_line_fits(lf - 1 - i)) {
        content_size_ += lf + 1 - i;
        i = lf + 1;
        state_ = State::LineStart;
        continue;
      }
    }

    out.append(data + pending, i - pending);
    const char c = data[i];
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
        const std::size_t end =
            std::min({breaks.next_cr(i), breaks.next_lf(i), breaks.next_nul(i)});
        if (end > i) {
          emit(data + i, end - i, out);
          i = end;
        } else if (c == kCr) {
          state_ = State::Cr;
          ++i;
        } else if (c == kNul) {
          // Never a line break, but a receiver that strips NULs would see a different
          // line (".NUL" becomes "."): refuse the message like a bare CR/LF.
          flag(Violation::Nul);
          emit(&kNul, 1, out);
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
    pending = i;
  }
  out.append(data + pending, i - pending);
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
    case DataReader::Violation::Nul:
      return "nul";
    case DataReader::Violation::LineTooLong:
      return "line_too_long";
    case DataReader::Violation::TooBig:
      return "too_big";
  }
  return "unknown";
}

void DotStuffer::encode(std::string_view content, std::string& out) {
  if (content.empty()) return;
  const char* const data = content.data();
  const std::size_t size = content.size();
  std::size_t copied = 0;
  // Only a line start can need a dot, and only CRLF starts a line: look at the byte after
  // each LF instead of at every byte, and copy the runs between dots in one append.
  auto stuff_if_dot = [&](std::size_t line_start) {
    if (line_start < size && data[line_start] == '.') {
      out.append(data + copied, line_start - copied);
      out.push_back('.');
      copied = line_start;
    }
  };
  if (at_line_start_) {
    stuff_if_dot(0);
  } else if (last_was_cr_ && data[0] == '\n') {
    stuff_if_dot(1);
  }
  for (std::size_t from = 0; from < size;) {
    const void* hit = std::memchr(data + from, '\n', size - from);
    if (hit == nullptr) break;
    const std::size_t lf = static_cast<std::size_t>(static_cast<const char*>(hit) - data);
    if (lf > 0 && data[lf - 1] == '\r') stuff_if_dot(lf + 1);
    from = lf + 1;
  }
  out.append(data + copied, size - copied);

  const bool previous_was_cr = size >= 2 ? data[size - 2] == '\r' : last_was_cr_;
  at_line_start_ = data[size - 1] == '\n' && previous_was_cr;
  last_was_cr_ = data[size - 1] == '\r';
}

void DotStuffer::finish(std::string& out) {
  if (!at_line_start_) out += "\r\n";
  out += ".\r\n";
  *this = DotStuffer{};
}

}  // namespace portrelay::smtp
