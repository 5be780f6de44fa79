#pragma once
// spool::SpoolWriter: the one place that changes the spool's files. The daemon's Committer
// thread applies its rounds through it; `portrelay queue` with no daemon running applies its
// changes through it too (under the spool lock), so both make the same files the same way.
//
// apply() carries out a batch of changes as one round:
//   1. new content (a message, a state) into tmp/, each as a file created there (O_EXCL)
//      and given to the spool's owner;
//   2. each new file's data synced by its own descriptor (fdatasync, after
//      sync_file_range has started them all, so the waits overlap), never syncfs(): an
//      acknowledgement must not wait for other programs' dirty pages on the same disk;
//   3. the names: into queue/ (a message never over an existing name), state files
//      replaced, messages removed or moved to failed/;
//   4. one fsync() of each directory whose names changed, except for removals that need not
//      survive a crash (a message delivered to everyone: at worst it comes back and is
//      delivered again, the duplicate SMTP allows; its removal rides on the next sync of
//      queue/, and a busy spool no longer pays a directory sync per delivery).
// A round therefore costs one data sync per new file (they overlap on the device) and one
// fsync per changed directory. Each change gets its own Status. A change is ok only once its
// content and its name are both synced. A failed change leaves nothing behind: no file of it in
// tmp/, and a new message that was renamed into queue/ but whose directory could not be synced is
// taken back out (it was never acknowledged). A failed state replacement leaves the previous state
// file as it was.
//
// Blocking; one thread at a time (the tmp names' sequence is not locked).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "portrelay/base/status.hpp"
#include "portrelay/relay/message_body.hpp"
#include "portrelay/spool/spool_directory.hpp"

namespace portrelay::spool {

struct SpoolChange {
  enum class Kind { Store, State, Remove, MoveToFailed };

  // A new message: `header`, then `body`, then the end marker, as queue/<id>.
  static SpoolChange store(std::string id, std::string header,
                           std::unique_ptr<relay::MessageBody> body);
  // Replaces <dir>/<id>.state, dir being queue/ or failed/ (`failed_area`).
  static SpoolChange state(std::string id, std::string text, bool failed_area);
  // Removes the message and its state from queue/ (or failed/); `durable`: the directory
  // is synced before the change reports done.
  static SpoolChange remove(std::string id, bool failed_area, bool durable = true);
  // Moves a message (and its state) from queue/ to failed/.
  static SpoolChange move_to_failed(std::string id);

  Kind kind = Kind::Store;
  std::string id;
  std::string text;                          // header (Store) or state (State)
  std::unique_ptr<relay::MessageBody> body;  // Store; released once written
  bool failed_area = false;
  bool durable = true;  // Remove: see remove()
  Status result;        // set by SpoolWriter::apply
};

class SpoolWriter {
 public:
  // Through `directory`'s Env.
  explicit SpoolWriter(SpoolDirectory& directory);

  // Applies `changes` as one round (above) and sets each one's `result`. Returns how long
  // each sync call took, in seconds (for the histogram).
  std::vector<double> apply(std::vector<SpoolChange>& changes);

 private:
  struct TmpFile {
    std::string name;  // in tmp/; "" when the change wrote nothing or failed
    int fd = -1;       // open until its data is synced
  };
  // Writes one change's content into tmp/ and starts its write-back; {} (result set) on
  // failure, with nothing left behind.
  TmpFile write_file(SpoolChange& change, int tmp_dir);
  void sync_files(std::vector<SpoolChange>& changes, std::vector<TmpFile>& tmp, int tmp_dir);
  Status write_content(SpoolChange& change, int fd);

  SpoolDirectory& directory_;
  Env& env_;
  const std::string tmp_prefix_;  // ".<pid>.": a state's tmp/ name is <id>.state.<pid>.<n>
  std::uint64_t tmp_sequence_ = 0;
};

}  // namespace portrelay::spool
