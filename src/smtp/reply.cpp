#include "portrelay/smtp/reply.hpp"

#include <cstring>

namespace portrelay::smtp {

Reply make_reply(int code, std::string_view enhanced, std::string_view text) {
  Reply reply;
  reply.code = code;
  reply.enhanced = std::string(enhanced);
  reply.lines = {enhanced.empty() ? std::string(text)
                                  : std::string(enhanced) + " " + std::string(text)};
  return reply;
}
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Length of an RFC 3463 enhanced status code ("2.1.0") at the start of `text`, or 0 if there
// is none. The class digit must match the first digit of the reply code; the code must be
// followed by a space or end the line.
std::size_t enhanced_code_length(int code, std::string_view text) {
  if (text.size() < 5 || text[0] != static_cast<char>('0' + code / 100) || text[1] != '.') {
    return 0;
  }
  std::size_t pos = 2;
  auto digits = [&]() {
    std::size_t start = pos;
    while (pos < text.size() && is_digit(text[pos]) && pos - start < 4) ++pos;
    std::size_t count = pos - start;
    return count >= 1 && count <= 3;
  };
  if (!digits() || pos >= text.size() || text[pos] != '.') return 0;
  ++pos;
  if (!digits()) return 0;
  if (pos < text.size() && text[pos] != ' ') return 0;
  return pos;
}

// Reply text comes from a remote server and ends up in logs and on the client connection:
// CR and LF would let it forge extra lines, so they are replaced.
void append_single_line(std::string& out, std::string_view text) {
  for (char c : text) out.push_back(c == '\r' || c == '\n' ? ' ' : c);
}

void append_code(std::string& out, int code) {
  if (code < 0 || code > 999) code = 0;
  out.push_back(static_cast<char>('0' + code / 100));
  out.push_back(static_cast<char>('0' + code / 10 % 10));
  out.push_back(static_cast<char>('0' + code % 10));
}

}  // namespace

std::string Reply::message() const {
  if (lines.empty()) return {};
  std::string_view first = lines.front();
  if (!enhanced.empty() && first.substr(0, enhanced.size()) == enhanced) {
    first.remove_prefix(enhanced.size());
    if (!first.empty() && first.front() == ' ') first.remove_prefix(1);
  }
  return std::string(first);
}

std::string Reply::summary() const {
  std::string out;
  append_code(out, code);
  if (!lines.empty() && !lines.front().empty()) {
    out.push_back(' ');
    for (char c : lines.front()) {
      // Logs are line-oriented: keep control characters from the peer out of them.
      unsigned char u = static_cast<unsigned char>(c);
      out.push_back(u < 0x20 || u == 0x7f ? '?' : c);
    }
  }
  return out;
}

std::string format_reply(int code, std::string_view enhanced, std::string_view text) {
  std::string out;
  out.reserve(8 + enhanced.size() + text.size());
  append_code(out, code);
  if (!enhanced.empty() || !text.empty()) out.push_back(' ');
  append_single_line(out, enhanced);
  if (!enhanced.empty() && !text.empty()) out.push_back(' ');
  append_single_line(out, text);
  out += "\r\n";
  return out;
}

std::string format_multiline_reply(int code, const std::vector<std::string>& lines) {
  std::string out;
  if (lines.empty()) {
    append_code(out, code);
    out += "\r\n";
    return out;
  }
  for (std::size_t i = 0; i < lines.size(); ++i) {
    bool last = i + 1 == lines.size();
    append_code(out, code);
    if (!last) {
      out.push_back('-');
    } else if (!lines[i].empty()) {
      out.push_back(' ');
    }
    append_single_line(out, lines[i]);
    out += "\r\n";
  }
  return out;
}

std::string format_reply(const Reply& reply) {
  return format_multiline_reply(reply.code, reply.lines);
}

void ReplyParser::feed(std::string_view bytes) {
  if (failed()) return;
  // Drop already returned replies once they dominate the buffer, so memory stays bounded
  // without moving bytes on every call.
  if (consumed_ > 0 && (consumed_ >= buffer_.size() || consumed_ >= 4096) &&
      consumed_ * 2 >= buffer_.size()) {
    buffer_.erase(0, consumed_);
    line_start_ -= consumed_;
    scan_pos_ -= consumed_;
    consumed_ = 0;
  }
  buffer_.append(bytes);
}

std::nullopt_t ReplyParser::fail(std::string reason) {
  error_ = std::move(reason);
  pending_ = Reply{};
  return std::nullopt;
}

std::optional<Reply> ReplyParser::next() {
  while (!failed()) {
    // Look for the end of the current line, continuing where the last search stopped.
    const char* base = buffer_.data();
    const void* lf = scan_pos_ < buffer_.size()
                         ? std::memchr(base + scan_pos_, '\n', buffer_.size() - scan_pos_)
                         : nullptr;
    if (lf == nullptr) {
      scan_pos_ = buffer_.size();
      // +1: the CR of a CRLF may already be here while its LF is not.
      if (buffer_.size() - line_start_ > kMaxLineLength + 1) return fail("reply line too long");
      return std::nullopt;
    }
    std::size_t lf_pos = static_cast<const char*>(lf) - base;
    std::size_t end = lf_pos;
    if (end > line_start_ && buffer_[end - 1] == '\r') --end;
    std::string_view line(base + line_start_, end - line_start_);
    line_start_ = scan_pos_ = lf_pos + 1;

    if (line.size() > kMaxLineLength) return fail("reply line too long");
    if (line.find('\r') != std::string_view::npos || line.find('\0') != std::string_view::npos) {
      return fail("bare CR or NUL in reply");
    }
    if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2]) ||
        line[0] < '2' || line[0] > '5') {
      return fail("malformed reply code");
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    bool last = true;
    if (line.size() > 3) {
      if (line[3] == '-') {
        last = false;
      } else if (line[3] != ' ') {
        return fail("malformed reply separator");
      }
    }
    std::string_view text = line.size() > 3 ? line.substr(4) : std::string_view();

    if (pending_.lines.empty()) {
      pending_.code = code;
      if (std::size_t n = enhanced_code_length(code, text)) pending_.enhanced = text.substr(0, n);
    } else if (code != pending_.code) {
      return fail("reply code changed within a multi-line reply");
    }
    if (pending_.lines.size() >= kMaxLines) return fail("too many reply lines");
    pending_.lines.emplace_back(text);

    if (last) {
      consumed_ = line_start_;
      Reply done = std::move(pending_);
      pending_ = Reply{};
      return done;
    }
  }
  return std::nullopt;
}

void ReplyParser::clear() {
  buffer_.clear();
  consumed_ = 0;
  line_start_ = 0;
  scan_pos_ = 0;
  pending_ = Reply{};
}

}  // namespace portrelay::smtp
