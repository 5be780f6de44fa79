#pragma once
// Where a command finds its configuration file when the operator does not say.
#include <string>
#include <string_view>

namespace portrelay::cli {

// The path the Debian package installs and the systemd unit uses.
inline constexpr std::string_view kDefaultConfigPath = "/etc/portrelay/portrelay.toml";

// The environment variable that overrides the default path (not an explicit --config).
inline constexpr const char* kConfigPathVariable = "PORTRELAY_CONFIG";

// First that is non-empty: `explicit_path` (--config, or sendmail's -C), `environment_value`
// (PORTRELAY_CONFIG; nullptr when unset), kDefaultConfigPath.
std::string choose_config_path(std::string_view explicit_path, const char* environment_value);

// choose_config_path with the process's own PORTRELAY_CONFIG.
std::string resolve_config_path(std::string_view explicit_path);

}  // namespace portrelay::cli
