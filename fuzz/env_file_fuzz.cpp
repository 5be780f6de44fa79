// libFuzzer target: the env_file parser (KEY=VALUE lines). Any input is either read or
// refused with a ConfigError naming the file, line and column; what is read, written back
// as double-quoted values with escapes, reads back to the same variables.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "portrelay/config/config.hpp"
#include "portrelay/config/env_file.hpp"

namespace {

std::string quoted(const std::string& value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '\n')
      out += "\\n";
    else if (c == '"' || c == '\\' || c == '$' || c == '`')
      out += std::string("\\") + c;
    else
      out += c;
  }
  return out + "\"";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace portrelay::config;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  EnvFileValues values;
  try {
    values = parse_env_file(text, "env");
  } catch (const ConfigError& error) {
    if (error.file() != "env" || error.line() < 1 || error.column() < 1) std::abort();
    return 0;
  }
  std::string written;
  for (const auto& [key, value] : values) {
    written += key + "=" + quoted(value) + "\n";
  }
  if (parse_env_file(written, "env") != values) std::abort();
  return 0;
}
