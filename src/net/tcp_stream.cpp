#include "portrelay/net/tcp_stream.hpp"

#include <arpa/inet.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "stream_buffers.hpp"

namespace portrelay::net {
namespace {

using Handle = UvHandle<uv_tcp_t, TcpStream>;

}  // namespace

TcpStream::TcpStream(uv_loop_t* loop) : handle_(this) {
  uv_tcp_init(loop, handle_.get());
  handle_.set_initialized();
  uv_tcp_nodelay(handle_.get(), 1);
}

int TcpStream::connect(const sockaddr* address, ConnectCallback callback) {
  on_connect_ = std::move(callback);
  auto* request = new uv_connect_t{};
  int rc = uv_tcp_connect(request, handle_.get(), address, [](uv_connect_t* req, int status) {
    std::unique_ptr<uv_connect_t> owned(req);
    TcpStream* self = Handle::owner_of(req->handle);
    if (!self || status == UV_ECANCELED) return;
    auto callback = std::move(self->on_connect_);
    if (callback) callback(status);
  });
  if (rc != 0) delete request;
  return rc;
}

int TcpStream::accept_from(uv_stream_t* server) { return uv_accept(server, handle_.as_stream()); }

void TcpStream::start_reading(ReadCallback callback) {
  detail::StreamIo<TcpStream>::start_reading(*this, std::move(callback));
}

void TcpStream::stop_reading() {
  if (!handle_.closed()) uv_read_stop(handle_.as_stream());
}

bool TcpStream::write(std::string data) {
  return detail::StreamIo<TcpStream>::write(*this, std::move(data), /*try_first=*/true);
}

std::size_t TcpStream::write_queue_size() const {
  if (handle_.closed()) return 0;
  return uv_stream_get_write_queue_size(handle_.as_stream());
}

void TcpStream::shutdown_after_writes(std::function<void()> done) {
  if (handle_.closed()) return;
  on_shutdown_ = std::move(done);
  auto* request = new uv_shutdown_t{};
  if (uv_shutdown(request, handle_.as_stream(), [](uv_shutdown_t* req, int) {
        std::unique_ptr<uv_shutdown_t> owned(req);
        TcpStream* self = Handle::owner_of(req->handle);
        if (!self || !self->on_shutdown_) return;
        auto callback = std::move(self->on_shutdown_);
        self->on_shutdown_ = nullptr;
        callback();
      }) != 0) {
    delete request;
    on_shutdown_ = nullptr;
  }
}

bool TcpStream::peer_sockaddr(sockaddr_storage& out) const {
  if (peer_length_ > 0) {
    std::memcpy(&out, &peer_, sizeof(out));
    return true;
  }
  if (handle_.closed()) return false;
  int length = sizeof(out);
  if (uv_tcp_getpeername(handle_.get(), reinterpret_cast<sockaddr*>(&out), &length) != 0)
    return false;
  std::memcpy(&peer_, &out, sizeof(out));
  peer_length_ = length;
  return true;
}

std::string TcpStream::peer_address() const {
  if (!peer_address_.empty()) return peer_address_;
  sockaddr_storage address{};
  if (!peer_sockaddr(address)) return "unknown";
  // A connected socket's peer does not change: asked once (the server, the session and its
  // log lines all want it).
  peer_address_ = format_address(reinterpret_cast<sockaddr*>(&address));
  return peer_address_;
}

std::string format_address(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (address->sa_family == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    uv_ip4_name(v4, text, sizeof(text));
    return std::string(text) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (address->sa_family == AF_INET6) {
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
    uv_ip6_name(v6, text, sizeof(text));
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return "unknown";
}

std::string format_ip(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (address->sa_family == AF_INET) {
    uv_ip4_name(reinterpret_cast<const sockaddr_in*>(address), text, sizeof(text));
    return text;
  }
  if (address->sa_family == AF_INET6) {
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
      sockaddr_in v4{};
      v4.sin_family = AF_INET;
      std::memcpy(&v4.sin_addr, v6->sin6_addr.s6_addr + 12, 4);
      uv_ip4_name(&v4, text, sizeof(text));
    } else {
      uv_ip6_name(v6, text, sizeof(text));
    }
    return text;
  }
  return "unknown";
}

}  // namespace portrelay::net
