#include "portrelay/net/pipe_listener.hpp"

#include <sys/stat.h>

namespace portrelay::net {

using Handle = UvHandle<uv_pipe_t, PipeListener>;

PipeListener::PipeListener(uv_loop_t* loop, AcceptCallback on_accept)
    : loop_(loop), handle_(this), on_accept_(std::move(on_accept)) {
  uv_pipe_init(loop, handle_.get(), 0);
  handle_.set_initialized();
}

int PipeListener::listen_owner_only(const std::string& path, int backlog) {
  // The umask is the process's: set only around the bind, on the loop thread.
  const mode_t old_mask = ::umask(0077);
  const int rc = uv_pipe_bind(handle_.get(), path.c_str());
  ::umask(old_mask);
  if (rc != 0) return rc;
  return uv_listen(handle_.as_stream(), backlog, [](uv_stream_t* server, int status) {
    PipeListener* self = Handle::owner_of(server);
    if (!self || status != 0) return;
    auto stream = std::make_unique<PipeStream>(self->loop_);
    // A connection that could not be accepted is closed as `stream` goes.
    if (stream->accept_from(server) == 0) self->on_accept_(std::move(stream));
  });
}

}  // namespace portrelay::net
