#pragma once
// A listening Unix stream socket. Accepted connections are handed over as PipeStreams.
#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "portrelay/net/pipe_stream.hpp"
#include "portrelay/net/uv_handle.hpp"

namespace portrelay::net {

class PipeListener {
 public:
  using AcceptCallback = std::function<void(std::unique_ptr<PipeStream>)>;

  PipeListener(uv_loop_t* loop, AcceptCallback on_accept);
  // Creates the socket at `path` for its owner alone (made under umask 0077, so there is
  // no moment at which group or others may connect: mode 0700) and listens. Returns 0 or a libuv
  // error (UV_EADDRINUSE if `path` exists: removing a stale socket is the caller's call).
  int listen_owner_only(const std::string& path, int backlog);
  void close() { handle_.close(); }

 private:
  uv_loop_t* loop_;
  UvHandle<uv_pipe_t, PipeListener> handle_;
  AcceptCallback on_accept_;
};

}  // namespace portrelay::net
