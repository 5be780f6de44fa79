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
//     --pid (the unit passes $MAINPID), and the verdict is read from the metrics listener:
//     portrelay_config_last_reload_timestamp_seconds moves when the daemon has decided,
//     portrelay_config_last_reload_success says what (the reason is only in its log). With
//     [metrics] off as well, the signal is sent and the verdict is only in the log.
// Exit status: 0 applied, 1 the file was refused (here or by the daemon), 2 no running
// daemon could be asked, or it did not answer within 30 s.
#include <arpa/inet.h>
#include <netinet/in.h>
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
#include <optional>
#include <string>
#include <thread>

#include "portrelay/cli/commands.hpp"
#include "portrelay/cli/control_client.hpp"
#include "portrelay/config/config.hpp"
#include "portrelay/spool/spool_directory.hpp"

namespace portrelay::cli {
namespace {

constexpr int kExitRefused = 1;
constexpr int kExitNoDaemon = 2;
// A reload builds TLS contexts and reads the users file; it takes milliseconds, but a slow
// disk or an oauth token command must not make `systemctl reload` hang for ever.
constexpr auto kVerdictTimeout = std::chrono::seconds(30);

// GET /metrics from the daemon's own listener (a wildcard one is asked on loopback);
// nullopt when nothing answers with 200 within 5 s.
std::optional<std::string> read_metrics(const config::ListenAddress& listen) {
  std::string host = listen.host;
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  const bool v6 = host.find(':') != std::string::npos;
  sockaddr_storage address{};
  socklen_t length = 0;
  if (v6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(listen.port);
    if (::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) != 1) return std::nullopt;
    length = sizeof *in6;
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&address);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(listen.port);
    if (::inet_pton(AF_INET, host.c_str(), &in4->sin_addr) != 1) return std::nullopt;
    length = sizeof *in4;
  }
  const int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  timeval limit{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), length) == 0) {
    const std::string request = "GET /metrics HTTP/1.0\r\nHost: " + host + "\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t got;
      while (answer.size() < 4 * 1024 * 1024 && (got = ::read(fd, buffer, sizeof buffer)) > 0)
        answer.append(buffer, static_cast<std::size_t>(got));
    }
  }
  ::close(fd);
  if (answer.rfind("HTTP/1.", 0) != 0 || answer.compare(9, 3, "200") != 0) return std::nullopt;
  return answer;
}

// The value of an unlabelled series in Prometheus text.
std::optional<double> metric(const std::string& text, const std::string& name) {
  const std::string prefix = "\n" + name + " ";
  const auto at = text.find(prefix);
  if (at == std::string::npos) return std::nullopt;
  try {
    return std::stod(text.substr(at + prefix.size(), text.find('\n', at + 1) - at - prefix.size()));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

constexpr const char* kReloadTime = "portrelay_config_last_reload_timestamp_seconds";
constexpr const char* kReloadSuccess = "portrelay_config_last_reload_success";

int signal_daemon(const config::Config& config, const ReloadOptions& options) {
  if (options.pid <= 0) {
    std::cerr << "error: no running portrelay to reload: this configuration keeps no spool, "
                 "so there is no control socket to ask; name the daemon with --pid PID "
                 "(the unit passes $MAINPID)\n";
    return kExitNoDaemon;
  }
  // The last reload's time before the signal: the verdict is the next one.
  std::optional<double> before;
  if (config.metrics.enabled) {
    if (auto text = read_metrics(config.metrics.listen)) before = metric(*text, kReloadTime);
  }
  if (::kill(options.pid, SIGHUP) != 0) {
    std::cerr << "error: cannot signal process " << options.pid << ": " << std::strerror(errno)
              << "\n";
    return kExitNoDaemon;
  }
  if (!before) {
    std::cout << "sent SIGHUP to portrelay (pid " << options.pid
              << "); with no spool (control socket) and no metrics listener to read the "
                 "verdict from, it is only in the log (event=reload or event=reload_failed)\n";
    return 0;
  }
  const auto deadline = std::chrono::steady_clock::now() + kVerdictTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto text = read_metrics(config.metrics.listen);
    if (!text) continue;
    auto now = metric(*text, kReloadTime);
    if (!now || *now == *before) continue;
    if (metric(*text, kReloadSuccess).value_or(0) == 1) {
      std::cout << "reloaded (pid " << options.pid << ", SIGHUP)\n";
      return 0;
    }
    std::cerr << "error: portrelay kept its running configuration (pid " << options.pid
              << "); the reason is in its log (event=reload_failed)\n";
    return kExitRefused;
  }
  std::cerr << "error: sent SIGHUP to pid " << options.pid << ", but " << kReloadTime
            << " did not move within 30 s: is that portrelay, with this configuration?\n";
  return kExitNoDaemon;
}

}  // namespace

int reload(const ReloadOptions& options) {
  auto loaded = load_config_or_report(options.config_path);
  if (!loaded) {
    std::cerr << "error: the running configuration is left alone\n";
    return kExitRefused;
  }
  for (const auto& warning : loaded->warnings) std::cerr << "warning: " << warning << "\n";
  if (!loaded->relay.uses_spool()) return signal_daemon(*loaded, options);

  std::unique_ptr<spool::SpoolDirectory> directory;
  try {
    directory = std::make_unique<spool::SpoolDirectory>(loaded->spool.dir, /*create=*/false);
  } catch (const std::exception& error) {
    std::cerr << "error: no running portrelay to reload (" << error.what() << ")\n";
    return kExitNoDaemon;
  }
  const std::string socket = directory->control_path();
  const ControlExchange reply = ask_control(socket, "reload", kVerdictTimeout);
  if (!reply.connected) {
    std::cerr << "error: no running portrelay to reload: nothing answers on " << socket << " ("
              << reply.problem << ")\n";
    return kExitNoDaemon;
  }
  const std::string line = reply.answer.substr(0, reply.answer.find('\n'));
  if (line.empty()) {
    std::cerr << "error: portrelay did not answer the reload on " << socket << ": " << reply.problem
              << "\n";
    return kExitNoDaemon;
  }
  if (line.rfind("ok ", 0) == 0) {
    std::cout << line.substr(3) << "\n";
    return 0;
  }
  const std::string why = line.rfind("error ", 0) == 0 ? line.substr(6) : line;
  std::cerr << "error: portrelay kept its running configuration: " << why << "\n";
  return kExitRefused;
}

}  // namespace portrelay::cli
