#include "portrelay/net/loop.hpp"

namespace portrelay::net {

Loop::Loop(uv_loop_t* loop) : loop_(loop), idle_(this) {
  uv_idle_init(loop, idle_.get());
  idle_.set_initialized();
}

Loop::~Loop() {
  while (!tasks_.empty()) {
    auto tasks = std::move(tasks_);
    tasks_.clear();
    for (auto& task : tasks) task = nullptr;  // frees deferred objects without running work
  }
}

void Loop::post(std::function<void()> task) {
  tasks_.push_back(std::move(task));
  if (uv_is_active(idle_.as_handle())) return;
  // An active idle handle makes the loop poll without blocking, so the tasks run on the
  // very next turn, and it keeps the loop alive until they have.
  uv_idle_start(idle_.get(), [](uv_idle_t* handle) {
    if (Loop* self = UvHandle<uv_idle_t, Loop>::owner_of(handle)) self->run_posted();
  });
}

void Loop::run_posted() {
  // Tasks posted while these run wait for the next turn.
  auto tasks = std::move(tasks_);
  tasks_.clear();
  for (auto& task : tasks) {
    if (task) task();
    task = nullptr;
  }
  if (tasks_.empty()) uv_idle_stop(idle_.get());
}

}  // namespace portrelay::net
