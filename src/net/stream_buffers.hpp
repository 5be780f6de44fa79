#pragma once
// The buffers of a libuv stream (TcpStream, PipeStream), in one place: what a read lands
// in and what a write sends, each freed exactly when libuv is done with it, even after
// the stream's owner is gone (UvHandle).
#include <uv.h>

#include <cstdlib>
#include <memory>
#include <string>

namespace portrelay::net::detail {

// A write request owns the bytes it sends until libuv reports completion (or its
// cancellation, after the handle was closed).
struct WriteRequest {
  uv_write_t request;
  std::string data;
};

constexpr std::size_t kReadBufferSize = 64 * 1024;

// uv_alloc_cb: one buffer per read, freed by the read callback through ReadBuffer.
inline void allocate_read_buffer(uv_handle_t*, std::size_t, uv_buf_t* buffer) {
  buffer->base = static_cast<char*>(std::malloc(kReadBufferSize));
  buffer->len = buffer->base ? kReadBufferSize : 0;
}
using ReadBuffer = std::unique_ptr<char, decltype(&std::free)>;

}  // namespace portrelay::net::detail
