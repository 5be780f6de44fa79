#include "portrelay/net/pipe_stream.hpp"

#include <utility>

#include "stream_buffers.hpp"

namespace portrelay::net {

PipeStream::PipeStream(uv_loop_t* loop) : handle_(this) {
  uv_pipe_init(loop, handle_.get(), 0);
  handle_.set_initialized();
}

int PipeStream::accept_from(uv_stream_t* server) { return uv_accept(server, handle_.as_stream()); }

void PipeStream::start_reading(ReadCallback callback) {
  detail::StreamIo<PipeStream>::start_reading(*this, std::move(callback));
}

void PipeStream::stop_reading() {
  if (!handle_.closed()) uv_read_stop(handle_.as_stream());
}

bool PipeStream::write(std::string data) {
  return detail::StreamIo<PipeStream>::write(*this, std::move(data));
}

}  // namespace portrelay::net
