#pragma once
// spool::Committer: the one thread that writes the spool, with group commit.
//
// Sessions finishing DATA at the same moment share the cost of durability: the thread
// takes every job queued since its last round, writes the new files into tmp/, makes
// them durable with one syncfs(), renames them into queue/ (never over an existing
// file), makes the names durable with one fsync() of queue/, and only then reports each
// job done on the event loop. A round therefore costs two syncs however many messages it
// carries, and a message waits at most for the round in progress plus its own.
//
// Contract:
//  * A store job's callback says ok only after the file's content and its name in queue/
//    are synced. On any error the file is gone (nothing half-written stays in queue/ or
//    tmp/) and the callback gets the error.
//  * Callbacks run on the loop thread, in job order, never from inside the call that
//    queued the job.
//  * Jobs queued before stop() returns are finished, including those that completion
//    callbacks queue while stop() drains; after that a job fails at once ("shutting down").
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "portrelay/base/result.hpp"
#include "portrelay/net/async.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/relay/message_body.hpp"
#include "portrelay/spool/spool_directory.hpp"

namespace portrelay::spool {

class Committer {
 public:
  using Done = std::function<void(Result<bool>)>;
  // Called on the loop thread with the duration of every sync call (for the histogram).
  using SyncObserver = std::function<void(double seconds)>;

  Committer(net::Loop& loop, SpoolDirectory& directory, SyncObserver on_sync);
  ~Committer();  // stop()
  Committer(const Committer&) = delete;
  Committer& operator=(const Committer&) = delete;

  // A new message: `header` then `body` then the end marker, as queue/<id>.
  void store(std::string id, std::string header, std::unique_ptr<relay::MessageBody> body,
             Done done);
  // Replaces <dir>/<id>.state, dir being queue/ or failed/ (`failed_area`).
  void write_state(std::string id, std::string text, bool failed_area, Done done);
  // Removes the message and its state from queue/ (or failed/).
  void remove(std::string id, bool failed_area, Done done);
  // Moves a message (and its state) from queue/ to failed/.
  void move_to_failed(std::string id, Done done);

  // Finishes queued jobs and ends the thread. Loop thread.
  void stop();
  std::uint64_t syncs() const { return syncs_; }  // loop thread

 private:
  enum class Kind { Store, State, Remove, MoveToFailed };
  struct Job {
    Kind kind = Kind::Store;
    std::string id;
    std::string text;  // header (Store) or state (State)
    std::unique_ptr<relay::MessageBody> body;
    bool failed_area = false;
    Done done;
    Result<bool> result = true;
    std::string tmp;  // written file in tmp/, if any
  };
  void enqueue(Job job);
  void run();
  void round(std::vector<Job>& jobs, std::vector<double>& sync_seconds);
  void write_file(Job& job, int tmp_dir);
  void deliver_completions();

  net::Loop& loop_;
  SpoolDirectory& directory_;
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
  std::uint64_t tmp_sequence_ = 0;  // committer thread only
};

}  // namespace portrelay::spool
