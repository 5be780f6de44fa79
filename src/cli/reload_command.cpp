// `portrelay reload [--config F] [--pid PID]`: what `systemctl reload portrelay` runs
// (ExecReload). It needs nothing but this binary (no kill(1), so no procps), and its exit
// status is the daemon's verdict, which a bare SIGHUP cannot return:
//  1. The file is checked here first, as `portrelay check` does: a bad file is reported as
//     file:line:col and the daemon is not disturbed.
//  2. The daemon is asked over its control socket (<spool dir>/control, mode 0600 in a 0700
//     directory: only root and the daemon's user get in) to read its file again. It
//     answers once the new configuration is applied, or with why it kept the old one
//     (a changed listener needs a restart; a TLS key it cannot read; ...).
//  3. A configuration that keeps no spool has no control socket: then SIGHUP goes to
//     --pid (the unit passes $MAINPID), and the verdict is only in the daemon's log.
// Exit status: 0 applied, 1 the file was refused (here or by the daemon), 2 no running
// daemon could be asked, or it did not answer within 30 s.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>

#include "portrelay/cli/commands.hpp"
#include "portrelay/config/config.hpp"
#include "portrelay/spool/spool_directory.hpp"

namespace portrelay::cli {
namespace {

constexpr int kExitRefused = 1;
constexpr int kExitNoDaemon = 2;
// A reload builds TLS contexts and reads the users file; it takes milliseconds, but a slow
// disk or an oauth token command must not make `systemctl reload` hang for ever.
constexpr auto kVerdictTimeout = std::chrono::seconds(30);

struct Answer {
  bool connected = false;  // false: nothing listens on the socket (no daemon)
  std::string line;        // empty when the daemon did not answer in time
  std::string problem;     // why not, for the message
};

Answer ask(const std::string& socket_path, const std::string& request) {
  Answer answer;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof address.sun_path) {
    answer.problem = "the socket path is too long";
    return answer;
  }
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    answer.problem = std::strerror(errno);
    return answer;
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    answer.problem = std::strerror(errno);
    ::close(fd);
    return answer;
  }
  answer.connected = true;
  const std::string line = request + "\n";
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    answer.problem = std::strerror(errno);
    ::close(fd);
    return answer;
  }
  const auto deadline = std::chrono::steady_clock::now() + kVerdictTimeout;
  std::string text;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      answer.problem = "no answer within 30 s";
      break;
    }
    pollfd ready{fd, POLLIN, 0};
    const int polled = ::poll(&ready, 1, static_cast<int>(left.count()));
    if (polled < 0 && errno == EINTR) continue;
    if (polled <= 0) continue;  // the deadline check above ends the wait
    char buffer[1024];
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // the daemon closes after its one answer line
    text.append(buffer, static_cast<std::size_t>(got));
    if (text.size() > 64 * 1024) break;
  }
  ::close(fd);
  const auto newline = text.find('\n');
  if (newline != std::string::npos) text.resize(newline);
  if (!text.empty() && text.back() == '\r') text.pop_back();
  answer.line = text;
  if (answer.line.empty() && answer.problem.empty()) answer.problem = "no answer";
  return answer;
}

int signal_daemon(const ReloadOptions& options) {
  if (options.pid <= 0) {
    std::cerr << "error: no running portrelay to reload: this configuration keeps no spool, "
                 "so there is no control socket to ask; name the daemon with --pid PID "
                 "(the unit passes $MAINPID)\n";
    return kExitNoDaemon;
  }
  if (::kill(options.pid, SIGHUP) != 0) {
    std::cerr << "error: cannot signal process " << options.pid << ": " << std::strerror(errno)
              << "\n";
    return kExitNoDaemon;
  }
  std::cout << "sent SIGHUP to portrelay (pid " << options.pid
            << "); this configuration keeps no spool, so there is no control socket to "
               "return the verdict: see the log (event=reload or event=reload_failed)\n";
  return 0;
}

}  // namespace

int reload(const ReloadOptions& options) {
  auto loaded = load_config_or_report(options.config_path);
  if (!loaded) {
    std::cerr << "error: the running configuration is left alone\n";
    return kExitRefused;
  }
  for (const auto& warning : loaded->warnings) std::cerr << "warning: " << warning << "\n";
  if (!loaded->relay.uses_spool()) return signal_daemon(options);

  std::unique_ptr<spool::SpoolDirectory> directory;
  try {
    directory = std::make_unique<spool::SpoolDirectory>(loaded->spool.dir, /*create=*/false);
  } catch (const std::exception& error) {
    std::cerr << "error: no running portrelay to reload (" << error.what() << ")\n";
    return kExitNoDaemon;
  }
  const std::string socket = directory->control_path();
  const Answer answer = ask(socket, "reload");
  if (!answer.connected) {
    std::cerr << "error: no running portrelay to reload: nothing answers on " << socket << " ("
              << answer.problem << ")\n";
    return kExitNoDaemon;
  }
  if (answer.line.empty()) {
    std::cerr << "error: portrelay did not answer the reload on " << socket << ": "
              << answer.problem << "\n";
    return kExitNoDaemon;
  }
  if (answer.line.rfind("ok ", 0) == 0) {
    std::cout << answer.line.substr(3) << "\n";
    return 0;
  }
  const std::string why = answer.line.rfind("error ", 0) == 0 ? answer.line.substr(6) : answer.line;
  std::cerr << "error: portrelay kept its running configuration: " << why << "\n";
  return kExitRefused;
}

}  // namespace portrelay::cli
