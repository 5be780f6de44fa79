#pragma once
// Structured log lines on stderr, one event per line, logfmt style:
//   2026-11-23T06:50:01.123Z info session=s7 event=message_relayed endpoint=smtp.x:587 ...
// Callers pass only values that are safe to log: never a password or an AUTH token.
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace portrelay::log {

enum class Level { Debug, Info, Warn, Error };

using Field = std::pair<std::string_view, std::string_view>;

void set_min_level(Level level);
// Messages are dropped (tests silence the daemon's chatter) when the sink is off.
void set_enabled(bool enabled);
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

// Quotes a value if it contains spaces, quotes or control characters (logfmt).
std::string quote(std::string_view value);

}  // namespace portrelay::log
