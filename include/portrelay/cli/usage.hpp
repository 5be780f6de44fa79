#pragma once
// Command-line parsing with sysexits.h exit statuses rather than CLI11's own (104-109).
#include <CLI/CLI.hpp>
#include <optional>

namespace portrelay::cli {

// EX_USAGE from sysexits.h: the command was used incorrectly.
inline constexpr int kExitUsage = 64;

// Parses argv into `app`. Returns nullopt when the command should go on. Otherwise the exit
// status: 0 after --help/--version (printed here), kExitUsage after a usage error, which is
// reported on one line: the problem and where the usage is.
std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv);

}  // namespace portrelay::cli
