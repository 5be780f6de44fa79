#include "portrelay/net/loop.hpp"

#include "portrelay/base/log.hpp"

namespace portrelay::net {

Loop::Loop(uv_loop_t* loop) : loop_(loop), idle_(this), prepare_(this) {
  uv_idle_init(loop, idle_.get());
  idle_.set_initialized();
}

void Loop::batch_log_lines() {
  if (batching_) return;
  batching_ = true;
  uv_prepare_init(loop_, prepare_.get());
  prepare_.set_initialized();
  // Prepare handles run once per turn, just before the loop blocks for I/O: the lines of
  // the turn leave then, before anything can make the loop wait.
  uv_prepare_start(prepare_.get(), [](uv_prepare_t*) { log::flush_batch(); });
  uv_unref(prepare_.as_handle());  // not a reason for the loop to keep running
  log::begin_batching();
}

Loop::~Loop() {
  if (batching_) log::end_batching();
  // Frees deferred objects without running posted work; their destructors may defer more.
  while (!queue_.empty()) {
    running_.swap(queue_);
    for (auto& entry : running_)
      if (entry.doomed) entry.destroy(entry.doomed);
    running_.clear();
  }
}

void Loop::post(std::function<void()> task) { enqueue({std::move(task)}); }

void Loop::enqueue(Entry entry) {
  queue_.push_back(std::move(entry));
  if (uv_is_active(idle_.as_handle())) return;
  // An active idle handle makes the loop poll without blocking, so the entries run on the
  // very next turn, and it keeps the loop alive until they have.
  uv_idle_start(idle_.get(), [](uv_idle_t* handle) {
    if (Loop* self = UvHandle<uv_idle_t, Loop>::owner_of(handle)) self->run_posted();
  });
}

void Loop::run_posted() {
  // Entries added while these run wait for the next turn.
  running_.swap(queue_);
  for (auto& entry : running_) {
    if (entry.doomed) {
      entry.destroy(entry.doomed);
    } else if (entry.task) {
      entry.task();
    }
  }
  running_.clear();
  if (queue_.empty()) uv_idle_stop(idle_.get());
}

}  // namespace portrelay::net
