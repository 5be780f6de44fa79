#pragma once
// The spool's directory tree and the blocking file operations on it. Used by the
// committer thread, by start-up recovery and by `portrelay queue` (never on the event
// loop's hot path).
//
//   <dir>/lock        flock()ed exclusively by the daemon for its whole life
//   <dir>/control     the daemon's control socket (portrelay queue ... talks to it)
//   <dir>/tmp/        messages being written: never acknowledged; emptied at start-up
//   <dir>/queue/      <id> (message, immutable) and <id>.state (delivery state)
//   <dir>/failed/     messages that failed permanently and were not bounced
//   <dir>/corrupt/    files start-up could not read, moved aside and kept
//
// File safety: whoever owns the spool (the service user) controls every name in it, and
// root runs `portrelay queue` / `mailq` on it. So every file and subdirectory is opened
// relative to a directory descriptor (openat, renameat, unlinkat), never through a
// symbolic link (O_NOFOLLOW), never blocking (O_NONBLOCK until fstat says it is a regular
// file: a FIFO or device planted in the spool is refused, not waited on), and only files
// this process created (O_EXCL) are ever given to the owner, by fchown. Only the
// configured root path itself is resolved as given: it is the administrator's choice, and
// its parent belongs to root.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "portrelay/base/result.hpp"
#include "portrelay/base/status.hpp"
#include "portrelay/spool/env.hpp"
#include "portrelay/spool/spool_record.hpp"

namespace portrelay::spool {

// A queued message as found on disk.
struct StoredMessage {
  RecordLayout layout;
  DeliveryState state;  // from <id>.state, or fresh (every recipient pending)
  bool failed_area = false;
  std::int64_t modified_ms = 0;  // the message file's mtime (failed/: when it failed)
};

struct RecoveryReport {
  std::vector<StoredMessage> messages;  // queue/, oldest first
  std::vector<StoredMessage> failed;    // failed/
  std::size_t removed_partial = 0;      // unacknowledged files found in tmp/
  std::vector<std::string> corrupt;     // "name: why", each moved to corrupt/
  std::vector<std::string> unreadable;  // "name: why": an I/O error, left in place
  // How many of `unreadable` this process was not allowed to read (EACCES, EPERM).
  std::size_t permission_denied = 0;
};

class SpoolDirectory {
 public:
  // With `create`, makes the tree (mode 0700) where missing (the daemon). Without, only
  // opens what exists (`portrelay queue`, often run as root: it must not leave root-owned
  // directories the daemon's user cannot enter). Throws std::runtime_error naming the path.
  // Every file-system call goes through `env` (tests inject faults there); it must outlive
  // this object.
  explicit SpoolDirectory(std::string root, bool create = true, Env& env = Env::posix());
  ~SpoolDirectory();
  SpoolDirectory(const SpoolDirectory&) = delete;
  SpoolDirectory& operator=(const SpoolDirectory&) = delete;

  const std::string& root() const { return root_; }
  Env& env() const { return env_; }
  std::string tmp_path(const std::string& name) const { return root_ + "/tmp/" + name; }
  std::string queue_path(const std::string& id) const { return root_ + "/queue/" + id; }
  std::string state_path(const std::string& id) const { return queue_path(id) + ".state"; }
  std::string failed_path(const std::string& id) const { return root_ + "/failed/" + id; }
  std::string control_path() const { return root_ + "/control"; }
  int queue_fd() const { return queue_fd_; }
  int failed_fd() const { return failed_fd_; }
  int tmp_fd() const { return tmp_fd_; }
  int root_fd() const { return root_fd_; }
  int corrupt_fd() const { return corrupt_fd_; }
  // The owner of the spool's root directory (as opened): `portrelay queue` run as root
  // becomes this user before it touches a file.
  unsigned owner_uid() const { return owner_uid_; }
  unsigned owner_gid() const { return owner_gid_; }

  // Takes the exclusive lock that says "a daemon owns this spool". False if another
  // process holds it. Held until destruction.
  bool try_lock();
  // Whether some process (a running daemon) holds the lock now.
  bool locked_by_other() const;
  // Gives a file this process created in the spool (O_EXCL, never one it found) to the
  // spool's owner, when running as root on a spool another user owns (a root daemon must
  // not leave files the service user cannot read). False, errno set, if fchown failed.
  bool give_to_owner(int fd) const;

  // Empties tmp/, reads queue/ and failed/, moves unreadable files to corrupt/. Only
  // with the lock held.
  RecoveryReport recover() { return read_all(true); }
  // Reads queue/ and failed/ and changes nothing (portrelay queue list, with or without
  // a daemon: files appear in queue/ only complete, and states are replaced by rename).
  RecoveryReport scan() const { return const_cast<SpoolDirectory*>(this)->read_all(false); }
  // One message by id, from queue/ or failed/.
  Result<StoredMessage> load(const std::string& id) const;
  std::optional<std::uint64_t> free_bytes() const;

 private:
  RecoveryReport read_all(bool repair);
  // Errors coded Corruption (the file is not a message: set it aside) or anything else (it
  // could not be read: leave it).
  Result<StoredMessage> read_message(const std::string& dir, const std::string& id) const;
  void move_to_corrupt(const std::string& dir, const std::string& name);
  int area_fd(const std::string& dir) const { return dir == "failed" ? failed_fd_ : queue_fd_; }

  std::string root_;
  Env& env_;
  int root_fd_ = -1;
  int tmp_fd_ = -1;
  int queue_fd_ = -1;
  int failed_fd_ = -1;
  int corrupt_fd_ = -1;
  int lock_fd_ = -1;
  unsigned owner_uid_ = 0, owner_gid_ = 0;
};

// Blocking helpers (EINTR handled). Errors as "what: strerror", coded from errno. The
// overloads without an Env use Env::posix().
Status write_all(int fd, std::string_view data);
// By path, following links: not for names inside the spool (read_spool_file is).
Result<std::string> read_file(const std::string& path, std::size_t max = 1 << 20);
// The one way a file in the spool is opened: `name` (one path component) in the directory
// `dir_fd`, O_NOFOLLOW, O_CLOEXEC, and O_NONBLOCK until fstat has shown a regular file
// (cleared then). A name that is not a regular file (symbolic link, FIFO, device,
// directory) is checked with fstatat(AT_SYMLINK_NOFOLLOW) first and never opened. `flags`
// is O_RDONLY, or O_WRONLY|O_CREAT|O_EXCL for a new file. The error reads "cannot open:
// why", coded from errno (NotFound, AlreadyExists, ...) or Refused for a name that is not a
// regular file; errno is set too.
Result<int> open_spool_file(Env& env, int dir_fd, const std::string& name, int flags,
                            mode_t mode = 0600);
Result<int> open_spool_file(int dir_fd, const std::string& name, int flags, mode_t mode = 0600);
// A subdirectory of `dir_fd` (O_DIRECTORY|O_NOFOLLOW|O_NONBLOCK); -1 with errno set.
int open_spool_subdirectory(int dir_fd, const std::string& name);
Result<int> open_spool_subdirectory(Env& env, int dir_fd, const std::string& name);
// read_file() through open_spool_file().
Result<std::string> read_spool_file(Env& env, int dir_fd, const std::string& name,
                                    std::size_t max = 1 << 20);
Result<std::string> read_spool_file(int dir_fd, const std::string& name, std::size_t max = 1 << 20);
std::int64_t unix_ms_now();

}  // namespace portrelay::spool
