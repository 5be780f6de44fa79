#include "portrelay/net/loop_thread.hpp"

#include <exception>
#include <future>

namespace portrelay::net {

int drain_and_close(uv_loop_t* loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop);
}

LoopThread::~LoopThread() { stop(); }

void LoopThread::start(std::function<Hooks(Loop& loop)> setup) {
  std::promise<void> ready;
  auto started = ready.get_future();
  thread_ = std::thread([this, &ready, setup = std::move(setup)]() {
    uv_loop_t raw;
    uv_loop_init(&raw);
    Hooks hooks;
    {
      Loop loop(&raw);
      bool failed = false;
      try {
        hooks = setup(loop);
      } catch (...) {
        ready.set_exception(std::current_exception());
        failed = true;  // what setup built is destroyed already; ~Loop closes its own handle
      }
      if (!failed) {
        stop_signal_ = std::make_unique<Async>(&raw, [this, &hooks]() {
          stop_signal_->close();  // from now on only the application's own work keeps the loop
          if (hooks.stop) hooks.stop();
        });
        ready.set_value();
        uv_run(&raw, UV_RUN_DEFAULT);
        if (hooks.teardown) hooks.teardown();
        stop_signal_.reset();
      }
    }  // ~Loop frees what was deferred and closes its idle handle
    // Runs the close callbacks of everything above (also after a failed setup: returning
    // from inside the Loop's scope left its handle open and leaked the loop's memory).
    close_status_ = drain_and_close(&raw);
  });
  try {
    started.get();
  } catch (...) {
    thread_.join();
    throw;
  }
  running_ = true;
}

void LoopThread::stop() {
  if (!running_) return;
  running_ = false;
  stop_signal_->send();
  thread_.join();
}

}  // namespace portrelay::net
