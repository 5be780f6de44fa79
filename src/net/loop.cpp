#include "portrelay/net/loop.hpp"

namespace portrelay::net {

Loop::Loop(uv_loop_t* loop) : loop_(loop), idle_(this) {
  uv_idle_init(loop, idle_.get());
  idle_.set_initialized();
}

Loop::~Loop() {
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
