#pragma once
// A small dedicated thread pool for password hashing (scrypt), separate from libuv's
// thread pool. libuv's pool (4 threads by default) also runs getaddrinfo and file I/O; an
// AUTH flood that filled it with 50 ms scrypt jobs made upstream name resolution wait past
// connect_timeout, and relaying failed. Here the hashing has its own threads and a bounded
// queue: when the queue is full, submit() refuses at once and the client gets a 454
// ("try again later") instead of a place in an ever-growing line.
#include <uv.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "portrelay/net/uv_handle.hpp"

namespace portrelay::server {

class PasswordCheckPool {
 public:
  struct Limits {
    unsigned threads = 1;
    std::size_t max_queued = 32;  // checks waiting for a thread (not counting running ones)
  };

  PasswordCheckPool(uv_loop_t* loop, Limits limits);
  // Stops the threads (a check in progress finishes first); results not yet delivered are
  // dropped. Must run on the loop thread.
  ~PasswordCheckPool();
  PasswordCheckPool(const PasswordCheckPool&) = delete;
  PasswordCheckPool& operator=(const PasswordCheckPool&) = delete;

  // Runs `check` on a pool thread, then `done(result)` on the loop thread. Returns false,
  // without calling anything, when max_queued checks are already waiting.
  bool submit(std::function<bool()> check, std::function<void(bool)> done);
  std::size_t queued() const;

 private:
  struct Job {
    std::function<bool()> check;
    std::function<void(bool)> done;
    bool result = false;
  };
  void work();
  void deliver();  // on the loop thread: runs the done callbacks of finished jobs

  Limits limits_;
  net::UvHandle<uv_async_t, PasswordCheckPool> wakeup_;
  mutable std::mutex mutex_;
  std::condition_variable job_ready_;
  std::deque<Job> waiting_;
  std::vector<Job> finished_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace portrelay::server
