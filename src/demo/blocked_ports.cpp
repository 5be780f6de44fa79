#include "portrelay/demo/blocked_ports.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace portrelay::demo {

namespace {

constexpr auto kFillProbeTimeout = std::chrono::milliseconds(100);
constexpr int kMaxFillers = 16;

}  // namespace

BlackholePort::BlackholePort(const std::string& host, uint16_t port) : host_(host) {
  listener_ = listen_on(host, port, 0, &port_);
  for (int attempt = 0; attempt < kMaxFillers; ++attempt) {
    ConnectOutcome outcome = connect_with_timeout(host, port_, kFillProbeTimeout);
    if (outcome.result == ConnectResult::kTimedOut) return;  // queue full: SYNs now dropped
    if (outcome.result != ConnectResult::kConnected) {
      throw std::system_error(outcome.error, std::generic_category(),
                              "BlackholePort: filling the accept queue");
    }
    fillers_.push_back(std::move(outcome.fd));
  }
  throw std::runtime_error("BlackholePort: accept queue never filled up (not Linux?)");
}

RefusedPort::RefusedPort(const std::string& host, uint16_t port)
    : host_(host), socket_(bind_only(host, port, &port_)) {}

uint16_t refused_port(const std::string& host) {
  uint16_t port = 0;
  bind_only(host, 0, &port);
  return port;
}

}  // namespace portrelay::demo
