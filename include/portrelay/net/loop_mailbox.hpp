#pragma once
// net::LoopMailbox: runs tasks on one loop's thread, posted from any thread (Loop::post is
// for the loop's own thread). The daemon's loops ([server] workers) talk through these:
// the main loop hands a worker loop a reload or a shutdown, a worker loop hands back that
// it is done.
//
// Tasks run in the order posted, on a later turn of the loop. An open mailbox keeps its
// loop alive; close() on the loop's thread ends that, and tasks posted after it are
// dropped (post() says so), so nobody waits on a loop that no longer runs.
#include <uv.h>

#include <functional>
#include <mutex>
#include <vector>

#include "portrelay/net/async.hpp"

namespace portrelay::net {

class LoopMailbox {
 public:
  explicit LoopMailbox(uv_loop_t* loop);
  LoopMailbox(const LoopMailbox&) = delete;
  LoopMailbox& operator=(const LoopMailbox&) = delete;

  // Any thread, while this object exists. False (and `task` dropped) once closed.
  bool post(std::function<void()> task);
  // Loop thread. Tasks already posted and not yet run are dropped.
  void close();

 private:
  void run_posted();

  std::mutex mutex_;
  bool closed_ = false;
  std::vector<std::function<void()>> tasks_;
  Async wake_;
};

}  // namespace portrelay::net
