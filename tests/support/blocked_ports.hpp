#pragma once
// Loopback ports that look like blocked provider ports, without root or network namespaces.
#include <cstdint>
#include <string>
#include <vector>

#include "support/socket_util.hpp"

namespace portrelay::test {

// A port whose SYNs are silently dropped, like a cloud VM's blocked port 25: connect() to it
// neither succeeds nor fails until the kernel's SYN retries run out (about two minutes).
//
// Mechanism (Linux): the socket listens with backlog 0, so its accept queue holds exactly one
// established connection. We fill that queue with our own client connections and never
// accept them. While the queue is full the kernel drops every incoming SYN without answering
// (no SYN-ACK, no RST), which is exactly what a firewall DROP rule looks like to the client.
// Filling stops once a fresh non-blocking connect() no longer completes within ~100 ms.
class BlackholePort {
 public:
  // host: "127.0.0.1" or "::1". Throws std::runtime_error if the queue cannot be filled.
  explicit BlackholePort(const std::string& host = "127.0.0.1");
  ~BlackholePort() = default;  // UniqueFd members close the listener and the fillers
  BlackholePort(const BlackholePort&) = delete;
  BlackholePort& operator=(const BlackholePort&) = delete;

  uint16_t port() const { return port_; }
  const std::string& host() const { return host_; }

 private:
  std::string host_;
  uint16_t port_ = 0;
  UniqueFd listener_;
  std::vector<UniqueFd> fillers_;
};

// A loopback port nothing listens on: connect() gets ECONNREFUSED (RST) at once.
// Found by binding port 0 and closing the socket without listen(); another process could
// in theory grab the port in between, which is negligible for tests.
uint16_t refused_port(const std::string& host = "127.0.0.1");

}  // namespace portrelay::test
