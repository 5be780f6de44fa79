#pragma once
// net::Loop: one libuv loop and the one lifetime rule that goes with it.
//
// An object must never be destroyed while one of its own member functions is still on
// the call stack (a connection failing inside its read callback, a race finishing inside
// its timer, a session ending inside its input handler). Whoever decides such an object
// is done hands it to defer_delete(): it is freed on a later turn of the loop, when no
// callback of it can be running. There is no other mechanism (no "retired" slots, no
// liveness tokens for this purpose) — the idea of Envoy's deferredDelete.
#include <uv.h>

#include <functional>
#include <memory>
#include <vector>

#include "portrelay/net/uv_handle.hpp"

namespace portrelay::net {

class Loop {
 public:
  explicit Loop(uv_loop_t* loop);
  // Frees what still waits for deletion (their destructors may defer more; all of it goes).
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  uv_loop_t* uv() const { return loop_; }

  // Runs `task` on a later turn of this loop. Loop thread only (use net::Async to reach a
  // loop from another thread). Tasks run in the order posted.
  void post(std::function<void()> task);

  // Frees `object` on a later turn of the loop, in order with the posted tasks. Safe from
  // inside the object's callbacks. Costs no allocation (this runs for every message).
  template <typename T>
  void defer_delete(std::unique_ptr<T> object) {
    if (!object) return;
    enqueue({nullptr, object.release(), [](void* doomed) { delete static_cast<T*>(doomed); }});
  }

  std::size_t pending() const { return queue_.size(); }

  // Log lines written on this (the loop's) thread are written together once per turn,
  // before the loop waits for events (log::begin_batching), instead of one write(2) each.
  // Call on the loop's thread; the batch is flushed and ended when the Loop is destroyed.
  void batch_log_lines();
  bool batches_log_lines() const { return batching_; }

 private:
  // A posted task, or an object to free.
  struct Entry {
    std::function<void()> task;
    void* doomed = nullptr;
    void (*destroy)(void*) = nullptr;
  };
  void enqueue(Entry entry);
  void run_posted();

  uv_loop_t* loop_;
  UvHandle<uv_idle_t, Loop> idle_;        // active only while tasks wait: keeps the turn short
  UvHandle<uv_prepare_t, Loop> prepare_;  // batch_log_lines: unreferenced, every turn
  bool batching_ = false;
  std::vector<Entry> queue_;
  std::vector<Entry> running_;  // the batch being run; kept to reuse its capacity
};

}  // namespace portrelay::net
