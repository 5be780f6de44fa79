// How one log line is spelled: level names, logfmt quoting, JSON string escaping and the
// journald priority prefix. No state; the sink (log.cpp) adds the time and writes.
#include <cstdio>

#include "portrelay/base/log.hpp"

namespace portrelay::log {
namespace {

bool is_continuation(unsigned char c) { return (c & 0xc0) == 0x80; }

// Length of the well-formed UTF-8 sequence (RFC 3629 section 4) starting at text[at], or 0
// when the bytes there are not one: overlong forms, surrogates and code points above
// U+10FFFF are all rejected.
std::size_t utf8_sequence_length(std::string_view text, std::size_t at) {
  const auto byte = [&](std::size_t i) -> unsigned char {
    return at + i < text.size() ? static_cast<unsigned char>(text[at + i]) : 0;
  };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return is_continuation(byte(1)) ? 2 : 0;
  if (lead >= 0xe0 && lead <= 0xef) {
    const unsigned char second = byte(1);
    const bool second_ok = lead == 0xe0   ? second >= 0xa0 && second <= 0xbf
                           : lead == 0xed ? second >= 0x80 && second <= 0x9f
                                          : is_continuation(second);
    return second_ok && is_continuation(byte(2)) ? 3 : 0;
  }
  if (lead >= 0xf0 && lead <= 0xf4) {
    const unsigned char second = byte(1);
    const bool second_ok = lead == 0xf0   ? second >= 0x90 && second <= 0xbf
                           : lead == 0xf4 ? second >= 0x80 && second <= 0x8f
                                          : is_continuation(second);
    return second_ok && is_continuation(byte(2)) && is_continuation(byte(3)) ? 4 : 0;
  }
  return 0;  // a continuation byte without a lead, 0xc0/0xc1 (overlong) or 0xf5..0xff
}

void append_json_string(std::string& out, std::string_view value) {
  out += '"';
  for (std::size_t at = 0; at < value.size();) {
    const unsigned char c = static_cast<unsigned char>(value[at]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
          out += escaped;
        } else if (c >= 0x80) {
          const std::size_t length = utf8_sequence_length(value, at);
          if (length == 0) {
            out += "\\ufffd";  // one replacement character per stray byte
          } else {
            out.append(value.substr(at, length));
            at += length;
            continue;
          }
        } else {
          out += static_cast<char>(c);
        }
    }
    ++at;
  }
  out += '"';
}

void append_quoted(std::string& out, std::string_view value) {
  bool needs_quotes = value.empty();
  for (unsigned char c : value)
    if (c <= ' ' || c == '"' || c == '=' || c == 0x7f) needs_quotes = true;
  if (!needs_quotes) {
    out += value;
    return;
  }
  out += '"';
  for (unsigned char c : value) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < ' ' || c == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\x%02x", c);
      out += escaped;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

void append_logfmt(std::string& out, Level level, std::string_view timestamp,
                   std::string_view event, std::initializer_list<Field> fields) {
  out += "ts=";
  out += timestamp;
  out += " level=";
  out += to_string(level);
  out += " event=";
  append_quoted(out, event);
  for (const auto& [key, value] : fields) {
    out += ' ';
    out += key;
    out += '=';
    append_quoted(out, value);
  }
}

void append_json(std::string& out, Level level, std::string_view timestamp, std::string_view event,
                 std::initializer_list<Field> fields) {
  out += "{\"ts\":";
  append_json_string(out, timestamp);
  out += ",\"level\":\"";
  out += to_string(level);
  out += "\",\"event\":";
  append_json_string(out, event);
  // Values stay strings even when they look like numbers: a key keeps one JSON type on
  // every line, which is what log stores that index fields expect.
  for (const auto& [key, value] : fields) {
    out += ',';
    append_json_string(out, key);
    out += ':';
    append_json_string(out, value);
  }
  out += '}';
}

}  // namespace

const char* to_string(Level level) {
  switch (level) {
    case Level::Debug:
      return "debug";
    case Level::Info:
      return "info";
    case Level::Warn:
      return "warn";
    case Level::Error:
      return "error";
  }
  return "info";
}

const char* to_string(Format format) { return format == Format::Json ? "json" : "logfmt"; }

std::optional<Level> parse_level(std::string_view text) {
  for (Level level : {Level::Debug, Level::Info, Level::Warn, Level::Error})
    if (text == to_string(level)) return level;
  return std::nullopt;
}

std::optional<Format> parse_format(std::string_view text) {
  for (Format format : {Format::Logfmt, Format::Json})
    if (text == to_string(format)) return format;
  return std::nullopt;
}

int syslog_priority(Level level) {
  switch (level) {
    case Level::Debug:
      return 7;  // LOG_DEBUG
    case Level::Info:
      return 6;  // LOG_INFO
    case Level::Warn:
      return 4;  // LOG_WARNING
    case Level::Error:
      return 3;  // LOG_ERR
  }
  return 6;
}

std::string quote(std::string_view value) {
  std::string out;
  append_quoted(out, value);
  return out;
}

std::string json_string(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 2);
  append_json_string(out, value);
  return out;
}

std::string format_line(Format format, bool journal_prefix, Level level, std::string_view timestamp,
                        std::string_view event, std::initializer_list<Field> fields) {
  std::string line;
  line.reserve(128);
  append_line(line, format, journal_prefix, level, timestamp, event, fields);
  return line;
}

void append_line(std::string& line, Format format, bool journal_prefix, Level level,
                 std::string_view timestamp, std::string_view event,
                 std::initializer_list<Field> fields) {
  if (journal_prefix) {
    // sd-daemon(3): journald reads "<N>" at the start of a stream line as its priority.
    line += '<';
    line += static_cast<char>('0' + syslog_priority(level));
    line += '>';
  }
  if (format == Format::Json) {
    append_json(line, level, timestamp, event, fields);
  } else {
    append_logfmt(line, level, timestamp, event, fields);
  }
  line += '\n';
}

}  // namespace portrelay::log
