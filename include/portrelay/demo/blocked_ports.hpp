#pragma once
// Loopback ports that look like blocked provider ports, without root or network namespaces.
#include <cstdint>
#include <string>
#include <vector>

#include "portrelay/demo/socket_util.hpp"

namespace portrelay::demo {

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
  // host: "127.0.0.1" or "::1"; port 0 picks a free one. Throws std::runtime_error if the
  // queue cannot be filled, std::system_error if the port cannot be bound.
  explicit BlackholePort(const std::string& host = "127.0.0.1", uint16_t port = 0);
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

// A port held by a bound socket that never listens, so connect() gets ECONNREFUSED (RST)
// at once and no other process can start listening there while this object lives.
class RefusedPort {
 public:
  explicit RefusedPort(const std::string& host = "127.0.0.1", uint16_t port = 0);
  uint16_t port() const { return port_; }
  const std::string& host() const { return host_; }

 private:
  std::string host_;
  uint16_t port_ = 0;
  UniqueFd socket_;
};

// A loopback port nothing listens on: connect() gets ECONNREFUSED (RST) at once.
// Found by binding port 0 and closing the socket without listen(); another process could
// in theory grab the port in between, which is negligible for tests.
uint16_t refused_port(const std::string& host = "127.0.0.1");

}  // namespace portrelay::demo
