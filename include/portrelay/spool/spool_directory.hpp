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
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "portrelay/base/result.hpp"
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
};

class SpoolDirectory {
 public:
  // With `create`, makes the tree (mode 0700) where missing (the daemon). Without, only
  // opens what exists (`portrelay queue`, often run as root: it must not leave root-owned
  // directories the daemon's user cannot enter). Throws std::runtime_error naming the path.
  explicit SpoolDirectory(std::string root, bool create = true);
  ~SpoolDirectory();
  SpoolDirectory(const SpoolDirectory&) = delete;
  SpoolDirectory& operator=(const SpoolDirectory&) = delete;

  const std::string& root() const { return root_; }
  std::string tmp_path(const std::string& name) const { return root_ + "/tmp/" + name; }
  std::string queue_path(const std::string& id) const { return root_ + "/queue/" + id; }
  std::string state_path(const std::string& id) const { return queue_path(id) + ".state"; }
  std::string failed_path(const std::string& id) const { return root_ + "/failed/" + id; }
  std::string control_path() const { return root_ + "/control"; }
  int queue_fd() const { return queue_fd_; }
  int failed_fd() const { return failed_fd_; }
  int tmp_fd() const { return tmp_fd_; }

  // Takes the exclusive lock that says "a daemon owns this spool". False if another
  // process holds it. Held until destruction.
  bool try_lock();
  // Whether some process (a running daemon) holds the lock now.
  bool locked_by_other() const;
  // Gives a file this process created in the spool to the spool's owner (root running
  // `portrelay queue` offline must not leave files the daemon's user cannot read).
  void give_to_owner(int fd) const;

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
  Result<StoredMessage> read_message(const std::string& dir, const std::string& id) const;
  void move_to_corrupt(const std::string& dir, const std::string& name);

  std::string root_;
  int root_fd_ = -1;
  int tmp_fd_ = -1;
  int queue_fd_ = -1;
  int failed_fd_ = -1;
  int lock_fd_ = -1;
  unsigned owner_uid_ = 0, owner_gid_ = 0;
};

// Blocking helpers (EINTR handled). Errors as "what: strerror".
Result<bool> write_all(int fd, std::string_view data);
Result<std::string> read_file(const std::string& path, std::size_t max = 1 << 20);
std::int64_t unix_ms_now();

}  // namespace portrelay::spool
