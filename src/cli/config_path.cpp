#include "portrelay/cli/config_path.hpp"

#include <cstdlib>

namespace portrelay::cli {

std::string choose_config_path(std::string_view explicit_path, const char* environment_value) {
  if (!explicit_path.empty()) return std::string(explicit_path);
  if (environment_value != nullptr && *environment_value != '\0') return environment_value;
  return std::string(kDefaultConfigPath);
}

std::string resolve_config_path(std::string_view explicit_path) {
  return choose_config_path(explicit_path, std::getenv(kConfigPathVariable));
}

}  // namespace portrelay::cli
