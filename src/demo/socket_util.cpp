#include "portrelay/demo/socket_util.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace portrelay::demo {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

SocketAddress make_address(const std::string& host, uint16_t port) {
  SocketAddress address;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address.storage);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    address.length = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    address.length = sizeof(sockaddr_in6);
  } else {
    throw std::invalid_argument("not a numeric IP address: " + host);
  }
  return address;
}

uint16_t local_port(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof(storage);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) {
    throw std::system_error(errno, std::generic_category(), "getsockname");
  }
  if (storage.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<sockaddr_in*>(&storage)->sin_port);
  }
  return ntohs(reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port);
}

UniqueFd listen_ephemeral(const std::string& host, int backlog, uint16_t* port) {
  return listen_on(host, 0, backlog, port);
}

UniqueFd bind_only(const std::string& host, uint16_t port, uint16_t* bound_port) {
  SocketAddress address = make_address(host, port);
  UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw std::system_error(errno, std::generic_category(), "socket");
  if (::bind(fd.get(), address.get(), address.length) != 0) {
    throw std::system_error(errno, std::generic_category(),
                            "bind " + host + ":" + std::to_string(port));
  }
  if (bound_port != nullptr) *bound_port = local_port(fd.get());
  return fd;
}

UniqueFd listen_on(const std::string& host, uint16_t requested_port, int backlog, uint16_t* port) {
  SocketAddress address = make_address(host, requested_port);
  UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw std::system_error(errno, std::generic_category(), "socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), address.get(), address.length) != 0) {
    throw std::system_error(errno, std::generic_category(),
                            "bind " + host + ":" + std::to_string(requested_port));
  }
  if (::listen(fd.get(), backlog) != 0) {
    throw std::system_error(errno, std::generic_category(), "listen");
  }
  if (port != nullptr) *port = local_port(fd.get());
  return fd;
}

void disable_nagle(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void set_nonblocking(int fd, bool nonblocking) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) throw std::system_error(errno, std::generic_category(), "fcntl(F_GETFL)");
  flags = nonblocking ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (::fcntl(fd, F_SETFL, flags) != 0) {
    throw std::system_error(errno, std::generic_category(), "fcntl(F_SETFL)");
  }
}

ConnectOutcome connect_with_timeout(const std::string& host, uint16_t port,
                                    std::chrono::milliseconds timeout) {
  ConnectOutcome outcome;
  SocketAddress address = make_address(host, port);
  UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) {
    outcome.error = errno;
    return outcome;
  }
  int rc = ::connect(fd.get(), address.get(), address.length);
  if (rc != 0 && errno != EINPROGRESS) {
    outcome.error = errno;
    outcome.result = errno == ECONNREFUSED ? ConnectResult::kRefused : ConnectResult::kFailed;
    return outcome;
  }
  if (rc != 0) {
    pollfd pfd{fd.get(), POLLOUT, 0};
    int ready;
    do {
      ready = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
    } while (ready < 0 && errno == EINTR);
    if (ready == 0) {
      outcome.result = ConnectResult::kTimedOut;
      return outcome;
    }
    int error = 0;
    socklen_t length = sizeof(error);
    if (ready < 0) {
      error = errno;
    } else if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
      error = errno;
    }
    if (error != 0) {
      outcome.error = error;
      outcome.result = error == ECONNREFUSED ? ConnectResult::kRefused : ConnectResult::kFailed;
      return outcome;
    }
  }
  set_nonblocking(fd.get(), false);
  disable_nagle(fd.get());
  outcome.result = ConnectResult::kConnected;
  outcome.fd = std::move(fd);
  return outcome;
}

}  // namespace portrelay::demo
