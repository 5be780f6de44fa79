#include "portrelay/net/loop_mailbox.hpp"

#include <utility>

namespace portrelay::net {

LoopMailbox::LoopMailbox(uv_loop_t* loop) : wake_(loop, [this]() { run_posted(); }) {}

bool LoopMailbox::post(std::function<void()> task) {
  std::lock_guard lock(mutex_);
  if (closed_) return false;
  tasks_.push_back(std::move(task));
  // Under the lock: close() cannot close the handle between the check and the send.
  wake_.send();
  return true;
}

void LoopMailbox::close() {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    tasks_.clear();
  }
  wake_.close();
}

void LoopMailbox::run_posted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(tasks_);
  }
  // A task may close this mailbox; the rest of the batch still runs (it was posted before).
  for (auto& task : batch) task();
}

}  // namespace portrelay::net
