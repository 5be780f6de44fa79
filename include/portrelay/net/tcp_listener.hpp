#pragma once
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "portrelay/net/tcp_stream.hpp"
#include "portrelay/net/uv_handle.hpp"

namespace portrelay::net {

// A listening TCP socket. Accepted connections are handed over as TcpStreams.
class TcpListener {
 public:
  using AcceptCallback = std::function<void(std::unique_ptr<TcpStream>)>;

  TcpListener(uv_loop_t* loop, AcceptCallback on_accept);
  // Binds and listens; returns 0 or a libuv error. `host` is an IP literal. With
  // `reuse_port`, the socket has SO_REUSEPORT before it is bound: several loops (threads)
  // each listen on the same address with a socket of their own, and the kernel spreads new
  // connections over them. Every socket on that address must set it, the first one too.
  int listen(const std::string& host, std::uint16_t port, int backlog = 511,
             bool reuse_port = false);
  // The port actually bound (useful with port 0 in tests).
  std::uint16_t bound_port() const;
  // Called with the libuv error when a pending connection could not be accepted (ENOBUFS,
  // ENOMEM, ...). Not for EMFILE/ENFILE: libuv then accepts and closes the pending
  // connections with a descriptor it keeps in reserve (the client sees a reset, not a
  // hang) and does not report them.
  void on_accept_error(std::function<void(int status)> callback) {
    on_error_ = std::move(callback);
  }
  void close() { handle_.close(); }

 private:
  uv_loop_t* loop_;
  UvHandle<uv_tcp_t, TcpListener> handle_;
  AcceptCallback on_accept_;
  std::function<void(int)> on_error_;
};

// 0 if nothing is bound to `host`:`port` now, else the libuv error of a plain bind (no
// SO_REUSEPORT), e.g. UV_EADDRINUSE. The first of several SO_REUSEPORT listeners asks this
// first: with the option alone, a second portrelay (same user) would bind the same address
// and silently take half of the connections, instead of failing to start. Port 0: 0.
int check_address_free(const std::string& host, std::uint16_t port);

// Fills `out` from an IP literal and port. Returns false if `host` is not an IP literal.
bool make_sockaddr(const std::string& host, std::uint16_t port, sockaddr_storage& out);

}  // namespace portrelay::net
