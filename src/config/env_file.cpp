#include "portrelay/config/env_file.hpp"

#include "portrelay/config/config.hpp"

namespace portrelay::config {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }
bool name_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool name_char(char c) { return name_start(c) || (c >= '0' && c <= '9'); }

class LineParser {
 public:
  LineParser(std::string_view line, int number, const std::string& source)
      : line_(line), number_(number), source_(source) {}

  // Adds the line's KEY=VALUE to `values` (nothing for blank and comment lines).
  void parse(EnvFileValues& values) {
    skip_blanks();
    if (at_end() || peek() == '#' || peek() == ';') return;
    const std::size_t key_start = at_;
    if (!name_start(peek())) fail("expected KEY=VALUE with a variable name as KEY");
    while (!at_end() && name_char(peek())) ++at_;
    std::string key(line_.substr(key_start, at_ - key_start));
    skip_blanks();
    if (key == "export" && !at_end() && name_start(peek()))
      fail("\"export\" is not accepted (systemd's EnvironmentFile syntax): write KEY=VALUE");
    if (at_end() || peek() != '=') fail("expected '=' after " + key);
    ++at_;
    skip_blanks();
    values[std::move(key)] = value();
  }

 private:
  std::string value() {
    if (at_end()) return {};
    if (peek() == '"' || peek() == '\'') return quoted(peek());
    std::string_view rest = line_.substr(at_);
    while (!rest.empty() && is_blank(rest.back())) rest.remove_suffix(1);
    if (!rest.empty() && rest.back() == '\\')
      fail_at(at_ + rest.size() - 1,
              "a backslash at the end of a line (continuation) is not accepted");
    return std::string(rest);
  }

  std::string quoted(char quote) {
    const std::size_t opened = at_;
    ++at_;
    std::string text;
    for (;;) {
      if (at_end()) fail_at(opened, std::string("quote ") + quote + " is not closed on this line");
      const char c = line_[at_++];
      if (c == quote) break;
      if (quote == '"' && c == '\\') {
        if (at_end())
          fail_at(at_ - 1, "a backslash at the end of a line (continuation) is not accepted");
        const char escaped = line_[at_++];
        if (escaped == 'n')
          text += '\n';
        else if (escaped == '"' || escaped == '\\' || escaped == '$' || escaped == '`')
          text += escaped;
        else
          fail_at(at_ - 2, std::string("unknown escape \\") + escaped +
                               " (accepted: \\\" \\\\ \\$ \\` \\n)");
        continue;
      }
      text += c;
    }
    skip_blanks();
    if (!at_end()) fail("unexpected text after the closing quote");
    return text;
  }

  bool at_end() const { return at_ >= line_.size(); }
  char peek() const { return line_[at_]; }
  void skip_blanks() {
    while (!at_end() && is_blank(peek())) ++at_;
  }
  [[noreturn]] void fail(const std::string& message) const { fail_at(at_, message); }
  [[noreturn]] void fail_at(std::size_t column, const std::string& message) const {
    throw ConfigError(source_, number_, static_cast<int>(column) + 1, message);
  }

  std::string_view line_;
  int number_;
  const std::string& source_;
  std::size_t at_ = 0;
};

}  // namespace

EnvFileValues parse_env_file(std::string_view text, const std::string& source) {
  EnvFileValues values;
  int number = 0;
  while (!text.empty()) {
    ++number;
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    LineParser(line, number, source).parse(values);
  }
  return values;
}

}  // namespace portrelay::config
