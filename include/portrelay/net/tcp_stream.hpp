#pragma once
// A TCP connection on the event loop: connect, read, queued writes, close.
#include <uv.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "portrelay/net/uv_handle.hpp"

namespace portrelay::net {
namespace detail {
template <typename Stream>
struct StreamIo;
}  // namespace detail

class TcpStream {
 public:
  // Called with received bytes; on EOF or error with `status` < 0 (UV_EOF for a clean end).
  using ReadCallback = std::function<void(std::string_view data, int status)>;
  using ConnectCallback = std::function<void(int status)>;

  explicit TcpStream(uv_loop_t* loop);
  TcpStream(const TcpStream&) = delete;
  TcpStream& operator=(const TcpStream&) = delete;

  // Starts a connect; the callback gets 0 or a libuv error (UV_ECONNREFUSED, ...).
  // Destroying the stream cancels a pending connect without calling back.
  int connect(const sockaddr* address, ConnectCallback callback);
  // Used by the listener: accept a pending connection into this stream.
  int accept_from(uv_stream_t* server);

  void start_reading(ReadCallback callback);
  void stop_reading();
  // Sends bytes: what the kernel takes at once is written now, the rest is queued.
  // Returns false if the stream is already broken.
  bool write(std::string data);
  // Bytes queued in the kernel-bound write queue (for backpressure).
  std::size_t write_queue_size() const;
  // Called whenever queued writes drain to empty. Not called for writes the kernel took
  // at once (nothing was queued): wait for the end of the output with
  // shutdown_after_writes(done) instead.
  void on_drained(std::function<void()> callback) { drained_ = std::move(callback); }
  // Half-close after queued writes are flushed (used after a final reply); `done` is
  // called then (not if the stream is closed or destroyed first).
  void shutdown_after_writes(std::function<void()> done = nullptr);
  void close() { handle_.close(); }
  bool is_open() const { return !handle_.closed(); }

  std::string peer_address() const;  // "ip:port" or "[ip]:port"
  bool peer_sockaddr(sockaddr_storage& out) const;

 private:
  template <typename Stream>
  friend struct detail::StreamIo;  // the read and write halves (stream_buffers.hpp)
  UvHandle<uv_tcp_t, TcpStream> handle_;
  ReadCallback on_read_;
  ConnectCallback on_connect_;
  std::function<void()> drained_;
  std::function<void()> on_shutdown_;
  std::size_t pending_writes_ = 0;
  // The peer, asked of the kernel once (peer_sockaddr, peer_address).
  mutable sockaddr_storage peer_{};
  mutable int peer_length_ = 0;
  mutable std::string peer_address_;
};

// "ip:port" / "[ip]:port" for a sockaddr.
std::string format_address(const sockaddr* address);
// The IP alone, IPv4-mapped IPv6 written as IPv4 ("::ffff:10.0.0.1" -> "10.0.0.1"), so a
// client counts as one address whichever way a dual-stack listener reports it.
std::string format_ip(const sockaddr* address);

}  // namespace portrelay::net
