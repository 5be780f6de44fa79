#pragma once
// net::LoopThread: a libuv loop on its own thread, started and stopped from outside.
// The daemon under test, the demo's provider and the demo's relay all run this way.
//
// Contract:
//  * start(setup) returns once `setup` has run on the loop thread. If it throws, the loop
//    is closed and start() rethrows on the caller's thread.
//  * stop() runs `hooks.stop` on the loop thread (begin an orderly end: close listeners,
//    let sessions finish) and waits until the loop has no more work, then runs
//    `hooks.teardown` there (destroy what setup built), drains the close callbacks and
//    closes the loop. close_status() is uv_loop_close's result: 0 means nothing leaked a
//    handle. Idempotent; the destructor calls it.
#include <functional>
#include <memory>
#include <thread>

#include "portrelay/net/async.hpp"
#include "portrelay/net/loop.hpp"

namespace portrelay::net {

class LoopThread {
 public:
  struct Hooks {
    std::function<void()> stop;      // loop thread: begin the end; the loop drains by itself
    std::function<void()> teardown;  // loop thread: after the loop ran dry
  };

  LoopThread() = default;
  ~LoopThread();
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;

  void start(std::function<Hooks(Loop& loop)> setup);
  void stop();
  bool running() const { return running_; }
  int close_status() const { return close_status_; }

 private:
  std::thread thread_;
  std::unique_ptr<Async> stop_signal_;
  bool running_ = false;
  int close_status_ = 0;
};

// Runs `loop` until it has no more work, then closes it; returns uv_loop_close's result
// (UV_EBUSY if a handle was left open). For loops owned by the caller's thread.
int drain_and_close(uv_loop_t* loop);

}  // namespace portrelay::net
