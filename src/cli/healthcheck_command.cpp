// `portrelay healthcheck [--ready]`: asks the running daemon's metrics listener for /healthz
// (or /readyz) and exits 0 on 200. For container HEALTHCHECKs and supervisors that cannot
// make HTTP requests themselves (the image has no curl).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <string>

#include "portrelay/cli/commands.hpp"
#include "portrelay/config/config.hpp"

namespace portrelay::cli {
namespace {

// A wildcard listener is asked on loopback.
std::string reachable_host(const std::string& host) {
  if (host == "0.0.0.0") return "127.0.0.1";
  if (host == "::") return "::1";
  return host;
}

}  // namespace

int healthcheck(const std::string& config_path, bool ready) {
  config::Config config;
  try {
    config = config::load_config_file(config_path);
  } catch (const config::ConfigError& error) {
    std::cerr << error.what() << "\n";
    return 1;
  }
  if (!config.metrics.enabled) {
    std::cerr << "error: [metrics] enabled = false: the health endpoints are on the metrics "
                 "listener\n";
    return 1;
  }
  const std::string host = reachable_host(config.metrics.listen.host);
  const std::uint16_t port = config.metrics.listen.port;
  const bool v6 = host.find(':') != std::string::npos;
  int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 1;
  timeval limit{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  sockaddr_storage address{};
  socklen_t length = 0;
  if (v6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    ::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr);
    length = sizeof *in6;
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&address);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    ::inet_pton(AF_INET, host.c_str(), &in4->sin_addr);
    length = sizeof *in4;
  }
  const std::string path = ready ? "/readyz" : "/healthz";
  const std::string where = host + ":" + std::to_string(port) + path;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), length) != 0) {
    std::cerr << "unhealthy: cannot connect to " << where << ": " << std::strerror(errno) << "\n";
    ::close(fd);
    return 1;
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: " + host + "\r\n\r\n";
  std::string answer;
  if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
    char buffer[1024];
    ssize_t got;
    while (answer.size() < 8192 && (got = ::read(fd, buffer, sizeof buffer)) > 0)
      answer.append(buffer, static_cast<std::size_t>(got));
  }
  ::close(fd);
  const bool ok =
      answer.rfind("HTTP/1.", 0) == 0 && answer.size() > 12 && answer.compare(9, 3, "200") == 0;
  const auto body = answer.find("\r\n\r\n");
  std::string detail =
      body == std::string::npos ? answer.substr(0, answer.find("\r\n")) : answer.substr(body + 4);
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r')) detail.pop_back();
  (ok ? std::cout : std::cerr) << (ok ? "healthy: " : "unhealthy: ") << where << ": "
                               << (detail.empty() ? "no answer" : detail) << "\n";
  return ok ? 0 : 1;
}

}  // namespace portrelay::cli
