#pragma once
// net::Async: wakes a loop from another thread (uv_async_t). `callback` runs on the loop's
// thread after send(); several sends before it runs may coalesce into one call.
#include <uv.h>

#include <functional>

#include "portrelay/net/uv_handle.hpp"

namespace portrelay::net {

class Async {
 public:
  Async(uv_loop_t* loop, std::function<void()> callback);
  // Any thread, while this object exists.
  void send();
  // Loop thread. A closed Async no longer keeps the loop alive.
  void close() { handle_.close(); }

 private:
  UvHandle<uv_async_t, Async> handle_;
  std::function<void()> callback_;
};

}  // namespace portrelay::net
