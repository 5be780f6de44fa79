#pragma once
#include <uv.h>

#include <chrono>
#include <functional>

#include "portrelay/net/uv_handle.hpp"

namespace portrelay::net {

// One-shot timer. Restarting replaces the pending callback; destruction cancels it. It
// fires no earlier than `delay` after start() by the real clock.
class Timer {
 public:
  explicit Timer(uv_loop_t* loop);
  void start(std::chrono::milliseconds delay, std::function<void()> callback);
  void stop();
  bool active() const;

 private:
  UvHandle<uv_timer_t, Timer> handle_;
  std::function<void()> callback_;
};

}  // namespace portrelay::net
