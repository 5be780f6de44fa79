#include "portrelay/cli/control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace portrelay::cli {

ControlExchange ask_control(const std::string& socket_path, const std::string& request,
                            std::chrono::seconds limit) {
  ControlExchange exchange;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof address.sun_path) {
    exchange.problem = "the socket path is too long";
    return exchange;
  }
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    exchange.problem = std::strerror(errno);
    return exchange;
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    // EACCES: a daemon running as another user than the spool's owner (root) made it.
    exchange.problem = std::strerror(errno);
    ::close(fd);
    return exchange;
  }
  exchange.connected = true;
  const std::string line = request + "\n";
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    exchange.problem = std::strerror(errno);
    ::close(fd);
    return exchange;
  }
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::string& text = exchange.answer;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      exchange.problem = "no answer within " + std::to_string(limit.count()) + " s";
      break;
    }
    pollfd ready{fd, POLLIN, 0};
    const int polled = ::poll(&ready, 1, static_cast<int>(left.count()));
    if (polled <= 0) continue;  // EINTR, or the deadline check above ends the wait
    char buffer[1024];
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    text.append(buffer, static_cast<std::size_t>(got));
    if (text.size() > 64 * 1024) break;
  }
  ::close(fd);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.empty() && exchange.problem.empty()) exchange.problem = "no answer";
  return exchange;
}

}  // namespace portrelay::cli
