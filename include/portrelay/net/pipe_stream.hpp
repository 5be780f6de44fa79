#pragma once
// A Unix stream socket connection on the event loop (uv_pipe_t): read, queued writes,
// close. The local counterpart of TcpStream, built the same way: the handle lives in a
// UvHandle, each write owns its bytes until libuv is done with them, and callbacks that
// come after the stream is gone find no owner and do nothing. Give a PipeStream to
// Loop::defer_delete when it ends inside one of its own callbacks.
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

class PipeStream {
 public:
  // Called with received bytes; on EOF or error with `status` < 0 (UV_EOF for a clean end).
  using ReadCallback = std::function<void(std::string_view data, int status)>;

  explicit PipeStream(uv_loop_t* loop);
  PipeStream(const PipeStream&) = delete;
  PipeStream& operator=(const PipeStream&) = delete;

  // Used by the listener: accept a pending connection into this stream.
  int accept_from(uv_stream_t* server);

  void start_reading(ReadCallback callback);
  void stop_reading();
  // Queues bytes for sending. Returns false if the stream is already broken.
  bool write(std::string data);
  // Called once whenever the write queue drains to empty (whether the writes succeeded or not).
  void on_drained(std::function<void()> callback) { drained_ = std::move(callback); }
  void close() { handle_.close(); }
  bool is_open() const { return !handle_.closed(); }

 private:
  template <typename Stream>
  friend struct detail::StreamIo;  // the read and write halves (stream_buffers.hpp)
  UvHandle<uv_pipe_t, PipeStream> handle_;
  ReadCallback on_read_;
  std::function<void()> drained_;
  std::size_t pending_writes_ = 0;
};

}  // namespace portrelay::net
