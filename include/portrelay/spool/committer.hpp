#pragma once
// spool::Committer: the daemon's one thread that writes the spool, with group commit.
//
// Sessions finishing DATA at the same moment share the cost of durability: the thread
// takes every job queued since its last round and applies them as one SpoolWriter round
// (spool_writer.hpp: new files into tmp/, each one's data synced by its own descriptor with
// the write-backs overlapping, renames into queue/ never over an existing file, one fsync()
// of each changed directory), and only then reports each job done on the event loop. A
// round therefore waits for two sync phases however many messages it carries, and a message
// waits at most for the round in progress plus its own.
//
// Contract:
//  * A store job's callback says ok only after the file's content and its name in queue/
//    are synced. On any error the file is gone (nothing half-written stays in queue/ or
//    tmp/) and the callback gets the error.
//  * Callbacks run on the loop thread, in job order, never from inside the call that
//    queued the job.
//  * Jobs queued before stop() returns are finished, including those that completion
//    callbacks queue while stop() drains; after that a job fails at once ("shutting down",
//    ErrorCode::ShuttingDown).
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "portrelay/base/status.hpp"
#include "portrelay/net/async.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/relay/message_body.hpp"
#include "portrelay/spool/spool_directory.hpp"
#include "portrelay/spool/spool_writer.hpp"

namespace portrelay::spool {

class Committer {
 public:
  using Done = std::function<void(Status)>;
  // Called on the loop thread with the duration of every sync call (for the histogram).
  using SyncObserver = std::function<void(double seconds)>;

  Committer(net::Loop& loop, SpoolDirectory& directory, SyncObserver on_sync);
  ~Committer();  // stop()
  Committer(const Committer&) = delete;
  Committer& operator=(const Committer&) = delete;

  // Any change (SpoolChange's constructors say what each does); `done` gets its Status.
  void apply(SpoolChange change, Done done);
  // The same, by name.
  void store(std::string id, std::string header, std::unique_ptr<relay::MessageBody> body,
             Done done);
  void write_state(std::string id, std::string text, bool failed_area, Done done);
  void remove(std::string id, bool failed_area, Done done);
  void move_to_failed(std::string id, Done done);

  // Finishes queued jobs and ends the thread. Loop thread.
  void stop();
  std::uint64_t syncs() const { return syncs_; }  // loop thread

 private:
  struct Job {
    SpoolChange change;  // its `result` once applied
    Done done;
  };
  void run();
  void round(std::vector<Job>& jobs, std::vector<double>& sync_seconds);
  void deliver_completions();

  net::Loop& loop_;
  SpoolWriter writer_;  // committer thread only (and stop(), once the thread has ended)
  SyncObserver on_sync_;
  std::unique_ptr<net::Async> wake_loop_;

  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::vector<Job> queued_;
  bool stopping_ = false;  // the thread finishes what is queued and ends
  bool closed_ = false;    // stop() is done: new jobs fail at once
  std::vector<Job> finished_;
  std::vector<double> finished_syncs_;
  std::thread thread_;
  std::uint64_t syncs_ = 0;
};

}  // namespace portrelay::spool
