#include "portrelay/net/tcp_listener.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace portrelay::net {

using Handle = UvHandle<uv_tcp_t, TcpListener>;

bool make_sockaddr(const std::string& host, std::uint16_t port, sockaddr_storage& out) {
  out = {};
  if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&out)) == 0) return true;
  out = {};
  return uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&out)) == 0;
}

int check_address_free(const std::string& host, std::uint16_t port) {
  if (port == 0) return 0;
  sockaddr_storage address{};
  if (!make_sockaddr(host, port, address)) return UV_EINVAL;
  const int fd = ::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  // As libuv binds a listener: SO_REUSEADDR (a port in TIME_WAIT is free), IPv6 only.
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (address.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
  const socklen_t length =
      address.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  const int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&address), length) == 0 ? 0 : -errno;
  ::close(fd);
  return rc;
}

TcpListener::TcpListener(uv_loop_t* loop, AcceptCallback on_accept)
    : loop_(loop), handle_(this), on_accept_(std::move(on_accept)) {
  uv_tcp_init(loop, handle_.get());
  handle_.set_initialized();
}

int TcpListener::listen(const std::string& host, std::uint16_t port, int backlog, bool reuse_port) {
  sockaddr_storage address{};
  if (!make_sockaddr(host, port, address)) return UV_EINVAL;
  if (reuse_port) {
    // libuv 1.44 (Debian 12) has no UV_TCP_REUSEPORT: the socket is made here, given the
    // option before bind, and handed to the handle, which binds and listens as usual.
    const int fd = ::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    const int on = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) {
      const int error = -errno;
      ::close(fd);
      return error;
    }
    if (const int rc = uv_tcp_open(handle_.get(), fd); rc != 0) {
      ::close(fd);
      return rc;
    }
  }
  // An IPv6 listener must not also take IPv4 traffic: the operator lists each address.
  unsigned flags = address.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
  int rc = uv_tcp_bind(handle_.get(), reinterpret_cast<sockaddr*>(&address), flags);
  if (rc != 0) return rc;
  return uv_listen(handle_.as_stream(), backlog, [](uv_stream_t* server, int status) {
    TcpListener* self = Handle::owner_of(server);
    if (!self) return;
    if (status == 0) {
      auto stream = std::make_unique<TcpStream>(self->loop_);
      status = stream->accept_from(server);
      if (status == 0) return self->on_accept_(std::move(stream));
    }
    if (self->on_error_) self->on_error_(status);
  });
}

std::uint16_t TcpListener::bound_port() const {
  sockaddr_storage address{};
  int length = sizeof(address);
  if (uv_tcp_getsockname(handle_.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0)
    return 0;
  if (address.ss_family == AF_INET)
    return ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
}

}  // namespace portrelay::net
