#pragma once
// net::Signal: a POSIX signal delivered as a loop callback (uv_signal_t).
#include <uv.h>

#include <functional>

#include "portrelay/net/uv_handle.hpp"

namespace portrelay::net {

class Signal {
 public:
  explicit Signal(uv_loop_t* loop);
  // Returns 0 or a libuv error. `callback` runs on the loop thread for every delivery.
  int start(int signum, std::function<void(int signum)> callback);
  void close() { handle_.close(); }

 private:
  UvHandle<uv_signal_t, Signal> handle_;
  std::function<void(int)> callback_;
};

}  // namespace portrelay::net
