#pragma once
// spool::Env: the file-system calls the spool makes, behind one small interface (LevelDB's
// Env is the model), so that a test can make any of them fail: ENOSPC on a write, EIO on a
// sync, a rename refused, a short write, EMFILE on open (tests/support/fault_env.hpp).
//
// Env::posix() is the real one. Each call is one system call (EINTR retried), relative to
// a directory descriptor where it takes a name, and reports failure as a Status/Result
// whose Error has the errno's code (base/status.hpp) and its strerror text as the message;
// callers say what they were doing. errno is left set as the call left it.
//
// What goes through it: every open, write, read, sync, rename, removal and mkdir of the
// spool's files (SpoolDirectory, SpoolWriter, Maildrop). Metadata checks that cannot change
// anything (fstat, fstatat, fcntl, readdir) stay direct.
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "portrelay/base/result.hpp"
#include "portrelay/base/status.hpp"

namespace portrelay::spool {

class Env {
 public:
  virtual ~Env() = default;
  // The real file system, shared by the whole process.
  static Env& posix();

  // openat(dir_fd, name, flags | O_CLOEXEC, mode): the new descriptor.
  virtual Result<int> open_at(int dir_fd, const std::string& name, int flags, mode_t mode) = 0;
  // One write(2): how many octets it took, possibly fewer than `size`.
  virtual Result<std::size_t> write(int fd, const char* data, std::size_t size) = 0;
  // One read(2) (at the file position) or pread(2) (at `offset`): 0 at the end.
  virtual Result<std::size_t> read(int fd, char* buffer, std::size_t size) = 0;
  virtual Result<std::size_t> read_at(int fd, char* buffer, std::size_t size,
                                      std::uint64_t offset) = 0;
  virtual Status sync(int fd) = 0;  // fsync(2)
  // fdatasync(2): the file's data and what is needed to read it back (its size), not its
  // times. For a new file whose name is made durable by an fsync of its directory.
  virtual Status sync_data(int fd) = 0;
  // sync_file_range(SYNC_FILE_RANGE_WRITE): start writing the file's dirty pages out without
  // waiting, so that the sync_data() calls of a round overlap on the device. Advisory: a
  // failure here shows up in sync_data().
  virtual void start_writeback(int fd) = 0;
  // syncfs(2): every dirty file on fd's file system, other programs' too. Only for a writer
  // that cannot open the directory it must sync (maildrop.cpp).
  virtual Status sync_file_system(int fd) = 0;
  // renameat(2), or renameat2(RENAME_NOREPLACE) when `replace` is false (AlreadyExists
  // then if `to` exists).
  virtual Status rename_at(int from_dir, const std::string& from, int to_dir, const std::string& to,
                           bool replace) = 0;
  virtual Status remove_at(int dir_fd, const std::string& name) = 0;  // unlinkat(2)
  virtual Status make_directory_at(int dir_fd, const std::string& name, mode_t mode) = 0;
  virtual Status close(int fd) = 0;
  // fstatvfs(2): octets free for an unprivileged writer on fd's file system.
  virtual Result<std::uint64_t> free_bytes(int fd) = 0;
};

// Writes all of `data` (looping over short writes) through `env`.
Status write_all(Env& env, int fd, std::string_view data);

}  // namespace portrelay::spool
