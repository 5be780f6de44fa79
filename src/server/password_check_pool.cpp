#include "portrelay/server/password_check_pool.hpp"

namespace portrelay::server {

PasswordCheckPool::PasswordCheckPool(uv_loop_t* loop, Limits limits)
    : limits_(limits), wakeup_(this) {
  uv_async_init(loop, wakeup_.get(), [](uv_async_t* handle) {
    if (auto* self = net::UvHandle<uv_async_t, PasswordCheckPool>::owner_of(handle))
      self->deliver();
  });
  wakeup_.set_initialized();
  // An idle pool must not keep the loop running after the daemon has shut down.
  uv_unref(wakeup_.as_handle());
  for (unsigned i = 0; i < std::max(1u, limits_.threads); ++i)
    threads_.emplace_back([this]() { work(); });
}

PasswordCheckPool::~PasswordCheckPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  job_ready_.notify_all();
  for (auto& thread : threads_) thread.join();
  wakeup_.close();
}

bool PasswordCheckPool::submit(std::function<bool()> check, std::function<void(bool)> done) {
  {
    std::lock_guard lock(mutex_);
    if (waiting_.size() >= limits_.max_queued) return false;
    waiting_.push_back(Job{std::move(check), std::move(done)});
  }
  job_ready_.notify_one();
  return true;
}

std::size_t PasswordCheckPool::queued() const {
  std::lock_guard lock(mutex_);
  return waiting_.size();
}

void PasswordCheckPool::work() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      job_ready_.wait(lock, [this]() { return stopping_ || !waiting_.empty(); });
      if (stopping_) return;
      job = std::move(waiting_.front());
      waiting_.pop_front();
    }
    job.result = job.check();
    job.check = nullptr;  // the password copy inside goes now, on this thread
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      finished_.push_back(std::move(job));
    }
    uv_async_send(wakeup_.get());
  }
}

void PasswordCheckPool::deliver() {
  std::vector<Job> finished;
  {
    std::lock_guard lock(mutex_);
    finished.swap(finished_);
  }
  for (Job& job : finished) job.done(job.result);
}

}  // namespace portrelay::server
