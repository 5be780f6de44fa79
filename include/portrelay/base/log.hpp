#pragma once
// Structured log lines on stderr, one event per line, in one of two formats:
//   logfmt: ts=2026-11-23T06:50:01.123Z level=info event=message_relayed session=s7 ...
//   json:   {"ts":"2026-11-23T06:50:01.123Z","level":"info","event":"message_relayed",...}
// When stderr is a journald stream, each line starts with its syslog priority ("<6>"),
// which journald takes as the entry's PRIORITY and strips from the text.
// Callers pass only values that are safe to log: never a password or an AUTH token.
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace portrelay::log {

enum class Level { Debug, Info, Warn, Error };
enum class Format { Logfmt, Json };

using Field = std::pair<std::string_view, std::string_view>;

// "debug", "info", "warn", "error" / "logfmt", "json": the spellings of the configuration
// file and --log-level. parse_* take exactly these and nothing else.
const char* to_string(Level level);
const char* to_string(Format format);
std::optional<Level> parse_level(std::string_view text);
std::optional<Format> parse_format(std::string_view text);
// The syslog(3) priority of a level: debug 7, info 6, warn 4, error 3.
int syslog_priority(Level level);

// The sink's settings. Each may change at any time from any thread (a reload sets them);
// a line is written whole with the settings it started with.
void set_min_level(Level level);
void set_format(Format format);
// Start each line with "<priority>" (sd-daemon(3)): for a stderr that is a journald stream.
void set_journal_prefix(bool enabled);
// Messages are dropped (tests silence the daemon's chatter) when the sink is off.
void set_enabled(bool enabled);
// `portrelay run --debug-transcript`: every upstream SMTP line in and out is logged
// (event=smtp_transcript), with AUTH data and message bodies left out.
void set_transcript(bool on);
bool transcript();

// Whether `fd` is the stream journald connected this process to: $JOURNAL_STREAM holds
// "device:inode" of that stream, and it is `fd` only if fstat(fd) has the same pair (a
// child whose stderr was redirected inherits the variable but not the stream).
bool is_journal_stream(int fd);

void write(Level level, std::string_view event, std::initializer_list<Field> fields);

inline void info(std::string_view event, std::initializer_list<Field> fields) {
  write(Level::Info, event, fields);
}
inline void warn(std::string_view event, std::initializer_list<Field> fields) {
  write(Level::Warn, event, fields);
}
inline void error(std::string_view event, std::initializer_list<Field> fields) {
  write(Level::Error, event, fields);
}
inline void debug(std::string_view event, std::initializer_list<Field> fields) {
  write(Level::Debug, event, fields);
}

// Batching, for an event loop's thread: its lines are kept in memory and written together,
// one write(2) per loop turn instead of one per line (the loop calls flush_batch() before
// it waits for events: net::Loop::batch_log_lines). An error line, or 64 KiB of lines, is
// written at once with what waits before it. Other threads write each line at once. The
// cost: lines of the turn a process is killed in (SIGKILL, abort) are lost.
void begin_batching();
void flush_batch();
void end_batching();  // flushes, and this thread writes each line at once again

// One complete line, newline included, as write() emits it; `timestamp` is already
// formatted (RFC 3339 UTC with milliseconds). Pure, for tests.
void append_line(std::string& out, Format format, bool journal_prefix, Level level,
                 std::string_view timestamp, std::string_view event,
                 std::initializer_list<Field> fields);
std::string format_line(Format format, bool journal_prefix, Level level, std::string_view timestamp,
                        std::string_view event, std::initializer_list<Field> fields);

// A logfmt value: as is, or in double quotes when it is empty or contains a space, '=',
// '"' or a control character; inside quotes '"' and '\' are backslash-escaped and control
// characters written \xNN. Other bytes (UTF-8 included) pass through.
std::string quote(std::string_view value);
// A JSON string literal (RFC 8259), quotes included: '"' '\' and control characters
// escaped (\n \r \t \b \f, else \u00XX; DEL as \u007f), valid UTF-8 kept as is, and each
// byte that is not part of a valid UTF-8 sequence replaced by \ufffd, so the line is
// always valid JSON whatever a peer sent.
std::string json_string(std::string_view value);

}  // namespace portrelay::log
