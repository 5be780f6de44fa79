#pragma once
// Reading a password for `hash-password`.
#include <optional>
#include <string>

namespace portrelay::cli {

struct PasswordRead {
  std::optional<std::string> password;  // nullopt: nothing usable was read; `error` says why
  std::string error;
};

// On a terminal: prompts on stderr with echo off, asks twice and insists both match; the
// terminal's settings are restored on every path, including SIGINT/SIGTERM/SIGHUP/SIGQUIT
// while waiting. Otherwise (a pipe, a file): one line from stdin, as scripts expect. A
// trailing CR is dropped; an empty password is refused.
PasswordRead read_new_password();

}  // namespace portrelay::cli
