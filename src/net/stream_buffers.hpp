#pragma once
// What every libuv stream wrapper (TcpStream, PipeStream) does the same way, in one place:
// the buffers (what a read lands in and what a write sends, each freed exactly when libuv
// is done with it, even after the stream's owner is gone: UvHandle) and the read and write
// halves over them (StreamIo).
#include <uv.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace portrelay::net::detail {

// A write request owns the bytes it sends until libuv reports completion (or its
// cancellation, after the handle was closed).
struct WriteRequest {
  uv_write_t request;
  std::string data;
};

constexpr std::size_t kReadBufferSize = 64 * 1024;

// uv_alloc_cb: every read of this thread lands in one buffer. libuv hands it to the read
// callback right after read(2), and every callback copies what it keeps before returning,
// so it is free again by the next read: no 64 KiB malloc and free per read (they were a
// fifth of the relay's instructions per message). Per thread: each loop thread has its own.
inline void allocate_read_buffer(uv_handle_t*, std::size_t, uv_buf_t* buffer) {
  thread_local char storage[kReadBufferSize];
  buffer->base = storage;
  buffer->len = kReadBufferSize;
}

// Reading and writing for a stream wrapper `Stream` that befriends StreamIo<Stream> and has
// `handle_` (a UvHandle<..., Stream>), `on_read_`, `drained_` and `pending_writes_`.
template <typename Stream>
struct StreamIo {
  using Handle = decltype(Stream::handle_);

  static void start_reading(Stream& self, typename Stream::ReadCallback callback) {
    self.on_read_ = std::move(callback);
    uv_read_start(self.handle_.as_stream(), allocate_read_buffer,
                  [](uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
                    Stream* owner = Handle::owner_of(stream);
                    if (!owner || nread == 0 || !owner->on_read_) return;
                    // Copy the callback: the handler may replace it or end the stream.
                    auto callback = owner->on_read_;
                    if (nread < 0) {
                      uv_read_stop(stream);
                      callback({}, static_cast<int>(nread));
                    } else {
                      callback(std::string_view(buf->base, static_cast<std::size_t>(nread)), 0);
                    }
                  });
  }

  // `try_first`: hand the bytes to the kernel now (uv_try_write) and queue only what it did
  // not take. A write the kernel takes at once then costs one syscall and nothing else: no
  // request, no copy kept, and no completion on the next loop turn (which in libuv also
  // re-arms the descriptor with an epoll_ctl). libuv refuses a try while earlier writes are
  // queued, so the bytes still leave in order. The cost: `drained_` is called only for
  // writes that were queued; a caller that waits for the end of its output must wait on
  // something that always completes (TcpStream::shutdown_after_writes).
  static bool write(Stream& self, std::string data, bool try_first = false) {
    if (self.handle_.closed() || data.empty()) return !self.handle_.closed();
    std::size_t written = 0;
    if (try_first) {
      uv_buf_t all = uv_buf_init(data.data(), static_cast<unsigned>(data.size()));
      const int taken = uv_try_write(self.handle_.as_stream(), &all, 1);
      if (taken > 0) written = static_cast<std::size_t>(taken);
      if (written == data.size()) return true;
      // UV_EAGAIN (queue not empty, socket full) or an error: uv_write below reports an
      // error the usual way.
    }
    auto* request = new WriteRequest{};
    if (written > 0) data.erase(0, written);
    request->data = std::move(data);
    uv_buf_t buf = uv_buf_init(request->data.data(), static_cast<unsigned>(request->data.size()));
    int rc =
        uv_write(&request->request, self.handle_.as_stream(), &buf, 1, [](uv_write_t* req, int) {
          std::unique_ptr<WriteRequest> owned(reinterpret_cast<WriteRequest*>(req));
          Stream* owner = Handle::owner_of(req->handle);
          if (!owner) return;
          if (--owner->pending_writes_ == 0 && owner->drained_) {
            auto callback = owner->drained_;
            callback();
          }
        });
    if (rc != 0) {
      delete request;
      return false;
    }
    ++self.pending_writes_;
    return true;
  }
};

}  // namespace portrelay::net::detail
