#pragma once
// The maildrop: where `portrelay sendmail` leaves a message when no daemon takes it (stopped,
// restarting, or held back because the package is not configured yet), and where the daemon
// picks it up. Postfix's postdrop and nullmailer-queue play the same part.
//
//   <spool>            0711: any user may pass through to maildrop/, nobody may list it
//   <spool>/maildrop/  03733, owned by the spool's owner: any user may create a file in it;
//                      only the owner may list it (no r for others); the sticky bit stops
//                      users from removing or renaming each other's files; the set-group-id
//                      bit gives each new file the spool's group, so the daemon reads it
//                      while the file's mode (0640) keeps every other user out.
//
// A file is written as ".<name>" and renamed to "<name>" once it is complete and synced, so
// the daemon never reads half of one (it skips dot files, and removes those a crashed
// sendmail left behind after a day). The daemon treats every file as hostile: it opens
// without following links and without blocking (a FIFO is skipped), takes only regular
// files with one link and at most the size limit, parses the whole file against the limits
// below, and records the file's owner (the submitting uid, which the submitter cannot forge)
// in its log.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/base/result.hpp"
#include "portrelay/spool/env.hpp"
#include "portrelay/spool/maildrop_format.hpp"

namespace portrelay::spool {

// sendmail's side: stores `message` durably in `maildrop_dir` (synced, then renamed, then
// the rename synced) and returns the file's name. Never follows a symlink. On any error
// the partial file is removed. File-system calls through `env`.
Result<std::string> drop_message(const std::string& maildrop_dir, const DroppedMessage& message,
                                 Env& env = Env::posix());

// The daemon's side, on the spool's directory (whose owner the daemon runs as, or root).
class Maildrop {
 public:
  struct File {
    std::string name;
    uid_t uid = 0;  // who dropped it
    std::string data;
  };

  // The daemon (`owner`): creates <spool_root>/maildrop where missing and sets the modes
  // above when this process owns the directories. `portrelay queue list` (not `owner`):
  // opens what exists and changes nothing. Throws std::runtime_error naming the path.
  // File-system calls through `env`, which must outlive this object.
  explicit Maildrop(const std::string& spool_root, bool owner = true, Env& env = Env::posix());
  ~Maildrop();
  Maildrop(const Maildrop&) = delete;
  Maildrop& operator=(const Maildrop&) = delete;

  const std::string& path() const { return path_; }
  // Complete files waiting, oldest name first, at most `max`. The owner also removes a
  // crashed sendmail's partial files older than a day.
  std::vector<std::string> waiting(std::size_t max);
  // Reads one waiting file; an error for anything but a regular file with one link of at
  // most `max_octets`.
  Result<File> read(const std::string& name, std::uint64_t max_octets) const;
  // After the message is durable in the queue.
  void remove(const std::string& name) const;
  // A file that is not a message: moved to <spool>/corrupt/maildrop-<name> and kept for the
  // operator (removed if it cannot be moved).
  void set_aside(const std::string& name) const;

 private:
  Env& env_;
  std::string root_;
  std::string path_;
  int root_fd_ = -1;
  int dir_fd_ = -1;
  bool owner_ = true;
};

}  // namespace portrelay::spool
