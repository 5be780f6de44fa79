#pragma once
// Checks on configuration values that are not about TOML syntax. Private to src/config.
#include <optional>
#include <string>
#include <string_view>

#include "portrelay/config/config.hpp"

namespace portrelay::config::detail {

// Letters, digits, '-' and '.', at most 253 characters: safe to put in an SMTP greeting or
// EHLO line (no spaces, no CR/LF).
bool is_valid_hostname(std::string_view name);
// A DNS name as above, or an IPv4/IPv6 literal without brackets.
bool is_valid_host(std::string_view host);
// [A-Za-z_][A-Za-z0-9_]*
bool is_valid_env_name(std::string_view name);
// [A-Za-z0-9_.:-], 1 to 64 characters: used verbatim as a Prometheus label value.
bool is_valid_label(std::string_view name);
bool is_loopback(const ListenAddress& address);
// "localhost" or a loopback IP literal (127.0.0.0/8, ::1, ::ffff:127.x.y.z). A DNS name is
// not resolved here, so any other name counts as not loopback.
bool is_loopback_host(std::string_view host);

// Why the file cannot be read ("No such file or directory", "is a directory"), or nullopt
// if it is a readable regular file.
std::optional<std::string> unreadable_reason(const std::string& path);
bool readable_by_group_or_others(const std::string& path);

// gethostname(), or "localhost" when that is not a valid hostname.
std::string default_hostname();

}  // namespace portrelay::config::detail
