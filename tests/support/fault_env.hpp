#pragma once
// A spool::Env that makes chosen calls fail, for tests of what the spool leaves behind when
// the disk fills (ENOSPC), a sync fails (EIO), a rename is refused, a write is short, or
// the process runs out of descriptors (EMFILE). Everything else goes to Env::posix().
// Thread-safe: the Committer calls it from its own thread.
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "portrelay/spool/env.hpp"

namespace portrelay::test {

class FaultEnv : public spool::Env {
 public:
  enum class Op {
    Open,
    Write,
    Read,
    Sync,
    SyncData,
    SyncFileSystem,
    Rename,
    Remove,
    MakeDirectory
  };

  // The `nth` call of `op` from now on (1: the next one) fails with `error`, once. With
  // `name_part`, only calls whose name (Open, Remove, MakeDirectory; either name of a
  // Rename) contains it count.
  void fail(Op op, int error, std::string name_part = "", int nth = 1);
  // The next write takes only `octets` of what it is given and reports that (a short
  // write; the caller must write the rest).
  void short_write(std::size_t octets);
  // How many times `op` was called, and how many faults are still waiting.
  std::size_t calls(Op op) const;
  std::size_t pending_faults() const;
  // Every sync and rename so far, in order, naming files by the name they were opened
  // with: "sync_data M1", "rename M1 -> M1", "sync queue", "syncfs tmp". For tests of what
  // is made durable before what.
  std::vector<std::string> durability_journal() const;

  Result<int> open_at(int dir_fd, const std::string& name, int flags, mode_t mode) override;
  Result<std::size_t> write(int fd, const char* data, std::size_t size) override;
  Result<std::size_t> read(int fd, char* buffer, std::size_t size) override;
  Result<std::size_t> read_at(int fd, char* buffer, std::size_t size,
                              std::uint64_t offset) override;
  Status sync(int fd) override;
  Status sync_data(int fd) override;
  void start_writeback(int fd) override;
  Status sync_file_system(int fd) override;
  Status rename_at(int from_dir, const std::string& from, int to_dir, const std::string& to,
                   bool replace) override;
  Status remove_at(int dir_fd, const std::string& name) override;
  Status make_directory_at(int dir_fd, const std::string& name, mode_t mode) override;
  Status close(int fd) override;
  Result<std::uint64_t> free_bytes(int fd) override;

 private:
  struct Fault {
    Op op;
    int error;
    std::string name_part;
    int skip;  // matching calls still to let through
  };
  void note(std::string entry);
  std::string name_of(int fd) const;  // caller holds mutex_
  // The errno this call must fail with, or 0; counts the call.
  int injected(Op op, const std::string& name = "", const std::string& other_name = "");

  mutable std::mutex mutex_;
  std::vector<Fault> faults_;
  std::map<Op, std::size_t> calls_;
  std::map<int, std::string> names_;  // open descriptors, by the name they were opened with
  std::vector<std::string> journal_;
  std::size_t short_write_ = 0;  // 0: none
  bool short_write_armed_ = false;
};

}  // namespace portrelay::test
