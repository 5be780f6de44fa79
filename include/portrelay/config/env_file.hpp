#pragma once
// The secrets file named by the top-level `env_file` key (KEY=VALUE lines, as systemd's
// EnvironmentFile= reads them). Read at every configuration load, so the daemon, `probe`,
// `check` and a reload all see the same values; a value here wins over the process
// environment (the environment is fixed at start, the file is read again on reload).
//
// Accepted, a subset of systemd's syntax:
//   - empty lines, and lines whose first non-blank character is '#' or ';' (comments);
//   - KEY=VALUE, KEY a shell variable name ([A-Za-z_][A-Za-z0-9_]*), blanks around KEY and
//     before VALUE ignored;
//   - VALUE unquoted: the rest of the line, trailing blanks removed, taken literally;
//   - VALUE in "double quotes": backslash escapes \" \\ \$ \` and \n (newline), nothing else
//     may follow the closing quote but blanks;
//   - VALUE in 'single quotes': taken literally;
//   - a later line for the same KEY replaces the earlier one.
// Not accepted (an error with file:line:col): `export KEY=...`, a line without '=', a quote
// left open (values spanning lines), a backslash at the end of a line (continuations).
#include <map>
#include <string>
#include <string_view>

namespace portrelay::config {

using EnvFileValues = std::map<std::string, std::string>;

// Throws ConfigError naming `source` with the line and column of the first problem.
EnvFileValues parse_env_file(std::string_view text, const std::string& source);

}  // namespace portrelay::config
