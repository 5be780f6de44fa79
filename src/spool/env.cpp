#include "portrelay/spool/env.hpp"

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace portrelay::spool {
namespace {

Error last_error() {
  const int error = errno;
  return Error{std::strerror(error), error_code_from_errno(error)};
}

Status status_of(int result) { return result == 0 ? Status::ok_status() : Status(last_error()); }

class PosixEnv final : public Env {
 public:
  Result<int> open_at(int dir_fd, const std::string& name, int flags, mode_t mode) override {
    int fd;
    do fd = ::openat(dir_fd, name.c_str(), flags | O_CLOEXEC, mode);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return last_error();
    return fd;
  }
  Result<std::size_t> write(int fd, const char* data, std::size_t size) override {
    ssize_t written;
    do written = ::write(fd, data, size);
    while (written < 0 && errno == EINTR);
    if (written < 0) return last_error();
    return static_cast<std::size_t>(written);
  }
  Result<std::size_t> read(int fd, char* buffer, std::size_t size) override {
    ssize_t got;
    do got = ::read(fd, buffer, size);
    while (got < 0 && errno == EINTR);
    if (got < 0) return last_error();
    return static_cast<std::size_t>(got);
  }
  Result<std::size_t> read_at(int fd, char* buffer, std::size_t size,
                              std::uint64_t offset) override {
    ssize_t got;
    do got = ::pread(fd, buffer, size, static_cast<off_t>(offset));
    while (got < 0 && errno == EINTR);
    if (got < 0) return last_error();
    return static_cast<std::size_t>(got);
  }
  Status sync(int fd) override { return status_of(::fsync(fd)); }
  Status sync_data(int fd) override { return status_of(::fdatasync(fd)); }
  void start_writeback(int fd) override {
    (void)::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  }
  Status sync_file_system(int fd) override { return status_of(::syncfs(fd)); }
  Status rename_at(int from_dir, const std::string& from, int to_dir, const std::string& to,
                   bool replace) override {
    return status_of(
        replace ? ::renameat(from_dir, from.c_str(), to_dir, to.c_str())
                : ::renameat2(from_dir, from.c_str(), to_dir, to.c_str(), RENAME_NOREPLACE));
  }
  Status remove_at(int dir_fd, const std::string& name) override {
    return status_of(::unlinkat(dir_fd, name.c_str(), 0));
  }
  Status make_directory_at(int dir_fd, const std::string& name, mode_t mode) override {
    return status_of(::mkdirat(dir_fd, name.c_str(), mode));
  }
  // Not retried on EINTR: on Linux the descriptor is gone whatever close() returns.
  Status close(int fd) override { return status_of(::close(fd)); }
  Result<std::uint64_t> free_bytes(int fd) override {
    struct statvfs info {};
    if (::fstatvfs(fd, &info) != 0) return last_error();
    return static_cast<std::uint64_t>(info.f_bavail) * info.f_frsize;
  }
};

}  // namespace

Env& Env::posix() {
  static PosixEnv env;
  return env;
}

Status write_all(Env& env, int fd, std::string_view data) {
  while (!data.empty()) {
    auto written = env.write(fd, data.data(), data.size());
    if (!written) return Error{"write: " + written.error().message, written.error().code};
    // A write that takes nothing of a non-empty buffer would loop for ever.
    if (*written == 0) return Error{"write: wrote nothing", ErrorCode::IoError};
    data.remove_prefix(*written);
  }
  return Status::ok_status();
}

}  // namespace portrelay::spool
