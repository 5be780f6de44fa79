// Small out-of-line members of the configuration value types.
#include <string>

#include "portrelay/config/config.hpp"

namespace portrelay::config {

std::string Endpoint::label() const { return name + ":" + std::to_string(port); }

namespace {

std::string format_location(const std::string& file, int line, int column,
                            const std::string& message) {
  std::string text = file;
  if (line > 0) {
    text += ":" + std::to_string(line);
    if (column > 0) text += ":" + std::to_string(column);
  }
  return text + ": " + message;
}

}  // namespace

ConfigError::ConfigError(std::string file, int line, int column, const std::string& message)
    : std::runtime_error(format_location(file, line, column, message)),
      file_(std::move(file)),
      line_(line),
      column_(column) {}

}  // namespace portrelay::config
