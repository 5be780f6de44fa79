#include "support/blocked_ports.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace portrelay::test {

namespace {

constexpr auto kFillProbeTimeout = std::chrono::milliseconds(100);
constexpr int kMaxFillers = 16;

}  // namespace

BlackholePort::BlackholePort(const std::string& host) : host_(host) {
  listener_ = listen_ephemeral(host, 0, &port_);
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

uint16_t refused_port(const std::string& host) {
  SocketAddress address = make_address(host, 0);
  UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw std::system_error(errno, std::generic_category(), "socket");
  if (::bind(fd.get(), address.get(), address.length) != 0) {
    throw std::system_error(errno, std::generic_category(), "bind " + host);
  }
  return local_port(fd.get());
}

}  // namespace portrelay::test
