#pragma once
// Small blocking-socket helpers for the demo's simulated blocked ports and for the test
// peers. Deliberately plain POSIX (no libuv), independent of the relay's event loop.
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace portrelay::demo {

// Owns one file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
};

// Numeric IPv4 or IPv6 address ("127.0.0.1", "::1"); throws std::invalid_argument otherwise.
SocketAddress make_address(const std::string& host, uint16_t port);

// Local port a bound socket ended up on (after binding port 0).
uint16_t local_port(int fd);

// A listening socket on host:port (SO_REUSEADDR set); port 0 picks a free one, reported in
// *bound_port. Throws std::system_error on failure.
UniqueFd listen_on(const std::string& host, uint16_t port, int backlog, uint16_t* bound_port);
UniqueFd listen_ephemeral(const std::string& host, int backlog, uint16_t* port);
// A socket bound to host:port that never listens: connections to it are refused (RST).
UniqueFd bind_only(const std::string& host, uint16_t port, uint16_t* bound_port);

enum class ConnectResult { kConnected, kRefused, kTimedOut, kFailed };

struct ConnectOutcome {
  ConnectResult result = ConnectResult::kFailed;
  int error = 0;  // errno for kRefused / kFailed
  UniqueFd fd;    // connected, back in blocking mode, only for kConnected
};

// Non-blocking connect() waited on with poll(), so a dropped SYN costs only `timeout`.
ConnectOutcome connect_with_timeout(const std::string& host, uint16_t port,
                                    std::chrono::milliseconds timeout);

// Sets or clears O_NONBLOCK. Throws std::system_error on failure.
void set_nonblocking(int fd, bool nonblocking);

// TCP_NODELAY: peers write one small reply per command; with Nagle plus delayed ACKs every
// second pipelined reply would wait ~40 ms.
void disable_nagle(int fd);

}  // namespace portrelay::demo
