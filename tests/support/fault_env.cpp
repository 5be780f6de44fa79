#include "support/fault_env.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace portrelay::test {
namespace {

Error failure(int error) {
  errno = error;
  return Error{std::strerror(error), error_code_from_errno(error)};
}

spool::Env& real() { return spool::Env::posix(); }

}  // namespace

void FaultEnv::fail(Op op, int error, std::string name_part, int nth) {
  std::lock_guard lock(mutex_);
  faults_.push_back(Fault{op, error, std::move(name_part), nth - 1});
}

void FaultEnv::short_write(std::size_t octets) {
  std::lock_guard lock(mutex_);
  short_write_ = octets;
  short_write_armed_ = true;
}

std::size_t FaultEnv::calls(Op op) const {
  std::lock_guard lock(mutex_);
  auto it = calls_.find(op);
  return it == calls_.end() ? 0 : it->second;
}

std::size_t FaultEnv::pending_faults() const {
  std::lock_guard lock(mutex_);
  return faults_.size() + (short_write_armed_ ? 1 : 0);
}

int FaultEnv::injected(Op op, const std::string& name, const std::string& other_name) {
  std::lock_guard lock(mutex_);
  ++calls_[op];
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (it->op != op) continue;
    if (!it->name_part.empty() && name.find(it->name_part) == std::string::npos &&
        other_name.find(it->name_part) == std::string::npos)
      continue;
    if (it->skip > 0) {
      --it->skip;
      continue;
    }
    const int error = it->error;
    faults_.erase(it);
    return error;
  }
  return 0;
}

std::vector<std::string> FaultEnv::durability_journal() const {
  std::lock_guard lock(mutex_);
  return journal_;
}

void FaultEnv::note(std::string entry) {
  std::lock_guard lock(mutex_);
  journal_.push_back(std::move(entry));
}

std::string FaultEnv::name_of(int fd) const {
  auto it = names_.find(fd);
  return it == names_.end() ? "fd" + std::to_string(fd) : it->second;
}

Result<int> FaultEnv::open_at(int dir_fd, const std::string& name, int flags, mode_t mode) {
  if (int error = injected(Op::Open, name)) return failure(error);
  auto opened = real().open_at(dir_fd, name, flags, mode);
  if (opened) {
    std::lock_guard lock(mutex_);
    names_[*opened] = name;
  }
  return opened;
}

Result<std::size_t> FaultEnv::write(int fd, const char* data, std::size_t size) {
  if (int error = injected(Op::Write)) return failure(error);
  std::size_t take = size;
  {
    std::lock_guard lock(mutex_);
    if (short_write_armed_) {
      short_write_armed_ = false;
      take = std::min(size, short_write_);
    }
  }
  return real().write(fd, data, take);
}

Result<std::size_t> FaultEnv::read(int fd, char* buffer, std::size_t size) {
  if (int error = injected(Op::Read)) return failure(error);
  return real().read(fd, buffer, size);
}

Result<std::size_t> FaultEnv::read_at(int fd, char* buffer, std::size_t size,
                                      std::uint64_t offset) {
  if (int error = injected(Op::Read)) return failure(error);
  return real().read_at(fd, buffer, size, offset);
}

Status FaultEnv::sync(int fd) {
  if (int error = injected(Op::Sync)) return failure(error);
  {
    std::lock_guard lock(mutex_);
    journal_.push_back("sync " + name_of(fd));
  }
  return real().sync(fd);
}

Status FaultEnv::sync_data(int fd) {
  std::string name;
  {
    std::lock_guard lock(mutex_);
    name = name_of(fd);
  }
  if (int error = injected(Op::SyncData, name)) return failure(error);
  note("sync_data " + name);
  return real().sync_data(fd);
}

void FaultEnv::start_writeback(int fd) { real().start_writeback(fd); }

Status FaultEnv::sync_file_system(int fd) {
  if (int error = injected(Op::SyncFileSystem)) return failure(error);
  {
    std::lock_guard lock(mutex_);
    journal_.push_back("syncfs " + name_of(fd));
  }
  return real().sync_file_system(fd);
}

Status FaultEnv::rename_at(int from_dir, const std::string& from, int to_dir, const std::string& to,
                           bool replace) {
  if (int error = injected(Op::Rename, from, to)) return failure(error);
  auto renamed = real().rename_at(from_dir, from, to_dir, to, replace);
  if (renamed) note("rename " + from + " -> " + to);
  return renamed;
}

Status FaultEnv::remove_at(int dir_fd, const std::string& name) {
  if (int error = injected(Op::Remove, name)) return failure(error);
  return real().remove_at(dir_fd, name);
}

Status FaultEnv::make_directory_at(int dir_fd, const std::string& name, mode_t mode) {
  if (int error = injected(Op::MakeDirectory, name)) return failure(error);
  return real().make_directory_at(dir_fd, name, mode);
}

Status FaultEnv::close(int fd) {
  {
    std::lock_guard lock(mutex_);
    names_.erase(fd);
  }
  return real().close(fd);
}

Result<std::uint64_t> FaultEnv::free_bytes(int fd) { return real().free_bytes(fd); }

}  // namespace portrelay::test
