#include "portrelay/net/pipe_stream.hpp"

#include <cstdlib>
#include <memory>

#include "stream_buffers.hpp"

namespace portrelay::net {
namespace {

using Handle = UvHandle<uv_pipe_t, PipeStream>;
using detail::ReadBuffer;
using detail::WriteRequest;

}  // namespace

PipeStream::PipeStream(uv_loop_t* loop) : handle_(this) {
  uv_pipe_init(loop, handle_.get(), 0);
  handle_.set_initialized();
}

int PipeStream::accept_from(uv_stream_t* server) { return uv_accept(server, handle_.as_stream()); }

void PipeStream::start_reading(ReadCallback callback) {
  on_read_ = std::move(callback);
  uv_read_start(handle_.as_stream(), detail::allocate_read_buffer,
                [](uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
                  ReadBuffer buffer(buf->base, &std::free);
                  PipeStream* self = Handle::owner_of(stream);
                  if (!self || nread == 0 || !self->on_read_) return;
                  // Copy the callback: the handler may replace it or end the stream.
                  auto callback = self->on_read_;
                  if (nread < 0) {
                    uv_read_stop(stream);
                    callback({}, static_cast<int>(nread));
                  } else {
                    callback(std::string_view(buf->base, static_cast<std::size_t>(nread)), 0);
                  }
                });
}

void PipeStream::stop_reading() {
  if (!handle_.closed()) uv_read_stop(handle_.as_stream());
}

bool PipeStream::write(std::string data) {
  if (handle_.closed() || data.empty()) return !handle_.closed();
  auto* request = new WriteRequest{};
  request->data = std::move(data);
  uv_buf_t buf = uv_buf_init(request->data.data(), static_cast<unsigned>(request->data.size()));
  int rc = uv_write(&request->request, handle_.as_stream(), &buf, 1, [](uv_write_t* req, int) {
    std::unique_ptr<WriteRequest> owned(reinterpret_cast<WriteRequest*>(req));
    PipeStream* self = Handle::owner_of(req->handle);
    if (!self) return;
    if (--self->pending_writes_ == 0 && self->drained_) {
      auto callback = self->drained_;
      callback();
    }
  });
  if (rc != 0) {
    delete request;
    return false;
  }
  ++pending_writes_;
  return true;
}

}  // namespace portrelay::net
