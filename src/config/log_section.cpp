// [log]: the daemon's log level and line format.
#include <string>

#include "sections.hpp"

namespace portrelay::config::detail {

LogConfig parse_log_section(ParseContext& context, const toml::table& table) {
  const TableReader reader(context, table, "log", "[log]", {"level", "format"});
  LogConfig settings;
  if (auto level = reader.string("level")) {
    auto parsed = log::parse_level(*level);
    if (!parsed) {
      reader.fail("level", *reader.find("level"),
                  "\"" + *level +
                      "\" is not a log level (write \"debug\", \"info\", \"warn\" or "
                      "\"error\")");
    }
    settings.level = *parsed;
  }
  if (auto format = reader.string("format")) {
    auto parsed = log::parse_format(*format);
    if (!parsed) {
      reader.fail("format", *reader.find("format"),
                  "\"" + *format + "\" is not a log format (write \"logfmt\" or \"json\")");
    }
    settings.format = *parsed;
  }
  return settings;
}

}  // namespace portrelay::config::detail
