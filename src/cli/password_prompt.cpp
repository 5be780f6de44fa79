#include "portrelay/cli/password_prompt.hpp"

#include <termios.h>
#include <unistd.h>

#include <csignal>
#include <iostream>

namespace portrelay::cli {
namespace {

// The settings to put back if a signal ends the process while echo is off. Only written before
// the handlers are installed and read in them; tcsetattr is async-signal-safe.
termios saved_terminal{};

constexpr int kRestoringSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

void restore_and_reraise(int signum) {
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_terminal);
  ::signal(signum, SIG_DFL);
  ::raise(signum);
}

// Echo off for its lifetime. A shell does not reset the terminal after a program dies, so an
// interrupted prompt must not leave the operator typing blind.
class EchoOff {
 public:
  EchoOff() {
    if (::tcgetattr(STDIN_FILENO, &saved_terminal) != 0) return;
    termios quiet = saved_terminal;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;  // the Enter key still moves to the next line
    for (int signum : kRestoringSignals) ::signal(signum, restore_and_reraise);
    active_ = ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
  }
  ~EchoOff() {
    if (active_) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_terminal);
    for (int signum : kRestoringSignals) ::signal(signum, SIG_DFL);
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

 private:
  bool active_ = false;
};

std::optional<std::string> read_line() {
  std::string line;
  if (!std::getline(std::cin, line)) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

PasswordRead read_new_password() {
  if (!::isatty(STDIN_FILENO)) {
    auto line = read_line();
    if (!line || line->empty()) return {std::nullopt, "no password on stdin"};
    return {std::move(line), ""};
  }
  EchoOff echo_off;
  std::cerr << "Password: " << std::flush;
  auto first = read_line();
  if (!first || first->empty()) return {std::nullopt, "no password given"};
  std::cerr << "Repeat the password: " << std::flush;
  auto second = read_line();
  if (!second || *second != *first) return {std::nullopt, "the two passwords do not match"};
  return {std::move(first), ""};
}

}  // namespace portrelay::cli
