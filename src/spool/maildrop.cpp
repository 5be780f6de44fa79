#include "portrelay/spool/maildrop.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "portrelay/spool/spool_directory.hpp"

namespace portrelay::spool {
namespace {

constexpr mode_t kDropDirMode = S_ISGID | S_ISVTX | 0733;
constexpr mode_t kRootMode = 0711;
constexpr mode_t kFileMode = 0640;
constexpr std::int64_t kStalePartialMs = 24 * 3600 * 1000;

std::string why(const std::string& what) { return what + ": " + std::strerror(errno); }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string random_hex(std::size_t octets) {
  unsigned char bytes[16] = {};
  octets = std::min(octets, sizeof bytes);
  std::size_t got = 0;
  while (got < octets) {
    const ssize_t n = ::getrandom(bytes + got, octets - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(why("getrandom"));
    got += static_cast<std::size_t>(n);
  }
  std::string hex;
  char pair[3];
  for (std::size_t i = 0; i < octets; ++i) {
    std::snprintf(pair, sizeof pair, "%02x", bytes[i]);
    hex += pair;
  }
  return hex;
}

}  // namespace

Result<std::string> drop_message(const std::string& maildrop_dir, const DroppedMessage& message,
                                 Env& env) {
  // O_PATH: the directory is write-only for the users who drop (no r), yet a base for openat.
  Fd dir(::open(maildrop_dir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dir.get() < 0) return Error{why("cannot open the maildrop " + maildrop_dir)};
  std::string name;
  try {
    name = std::to_string(unix_ms_now()) + "." + std::to_string(::getpid()) + "." + random_hex(8);
  } catch (const std::exception& error) {
    return Error{error.what()};
  }
  const std::string partial = "." + name;
  auto created = env.open_at(dir.get(), partial, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
  if (!created)
    return Error{
        "cannot create a file in the maildrop " + maildrop_dir + ": " + created.error().message,
        created.error().code};
  Fd file(*created);
  auto fail = [&](const std::string& what, const Error& why) -> Result<std::string> {
    Error error{what + ": " + why.message, why.code};
    (void)env.remove_at(dir.get(), partial);
    return error;
  };
  // The daemon reads it through the group the directory gives it; nobody else may.
  if (::fchmod(file.get(), kFileMode) != 0)
    return fail("chmod in the maildrop", os_error("fchmod", errno));
  if (auto written = write_all(env, file.get(), encode_dropped(message)); !written)
    return fail("cannot write to the maildrop", written.error());
  if (auto synced = env.sync(file.get()); !synced)
    return fail("cannot sync the maildrop file", synced.error());
  if (auto renamed = env.rename_at(dir.get(), partial, dir.get(), name, true); !renamed)
    return fail("cannot rename in the maildrop", renamed.error());
  // The new name must survive a crash too. A user who may not read the directory cannot
  // open it to fsync it (root and the spool's group can); syncfs() on the file then
  // flushes the file system, which includes the directory entry.
  auto readable = env.open_at(AT_FDCWD, maildrop_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
  const Status synced = readable ? env.sync(*readable) : env.sync_file_system(file.get());
  if (readable) (void)env.close(*readable);
  if (!synced)
    return Error{"cannot sync the maildrop " + maildrop_dir + ": " + synced.error().message,
                 synced.error().code};
  return name;
}

Maildrop::Maildrop(const std::string& spool_root, bool owner, Env& env)
    : env_(env), root_(spool_root), path_(spool_root + "/maildrop"), owner_(owner) {
  root_fd_ = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root_fd_ < 0) throw std::runtime_error(why("cannot open spool directory " + root_));
  if (auto made = owner ? env_.make_directory_at(root_fd_, "maildrop", 0700) : Status();
      !made && made.code() != ErrorCode::AlreadyExists) {
    const std::string error = why("cannot create " + path_);
    ::close(root_fd_);
    throw std::runtime_error(error);
  }
  dir_fd_ = ::openat(root_fd_, "maildrop", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd_ < 0) {
    const std::string error = why("cannot open " + path_);
    ::close(root_fd_);
    throw std::runtime_error(error);
  }
  if (!owner) return;
  // Only the owner may set the modes, and only the owner's directories get them: a spool
  // owned by another user (root running it by hand) is left as its owner made it.
  struct stat info {};
  const uid_t self = ::geteuid();
  if (::fstat(root_fd_, &info) == 0 && info.st_uid == self && (info.st_mode & 07777) != kRootMode)
    (void)::fchmod(root_fd_, kRootMode);
  if (::fstat(dir_fd_, &info) == 0 && info.st_uid == self &&
      (info.st_mode & 07777) != kDropDirMode) {
    if (::fchmod(dir_fd_, kDropDirMode) != 0) {
      const std::string error = why("cannot set the mode of " + path_);
      ::close(dir_fd_);
      ::close(root_fd_);
      throw std::runtime_error(error);
    }
  }
}

Maildrop::~Maildrop() {
  if (dir_fd_ >= 0) ::close(dir_fd_);
  if (root_fd_ >= 0) ::close(root_fd_);
}

std::vector<std::string> Maildrop::waiting(std::size_t max) {
  std::vector<std::string> names;
  const int listing = ::dup(dir_fd_);
  if (listing < 0) return names;
  DIR* dir = ::fdopendir(listing);
  if (dir == nullptr) {
    ::close(listing);
    return names;
  }
  ::rewinddir(dir);
  const std::int64_t now = unix_ms_now();
  while (dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    if (name.front() == '.') {
      struct stat info {};
      if (owner_ && ::fstatat(dir_fd_, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 &&
          now - static_cast<std::int64_t>(info.st_mtime) * 1000 > kStalePartialMs)
        (void)env_.remove_at(dir_fd_, name);
      continue;
    }
    names.push_back(name);
  }
  ::closedir(dir);
  // Names start with the drop's time in ms: oldest first.
  std::sort(names.begin(), names.end());
  if (names.size() > max) names.resize(max);
  return names;
}

Result<Maildrop::File> Maildrop::read(const std::string& name, std::uint64_t max_octets) const {
  // The spool's one way to open a name: a link planted here is not followed, and a FIFO
  // or device is never opened (it would hang the daemon).
  auto opened = open_spool_file(env_, dir_fd_, name, O_RDONLY);
  if (!opened) return opened.error();
  Fd fd(*opened);
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return Error{why("cannot stat " + path_ + "/" + name)};
  File file{name, info.st_uid, {}};
  if (info.st_nlink != 1) return Error{"a file with more than one link", ErrorCode::Refused};
  if (static_cast<std::uint64_t>(info.st_size) > max_octets)
    return Error{"file of " + std::to_string(info.st_size) + " octets is over the limit",
                 ErrorCode::Refused};
  char buffer[65536];
  while (true) {
    auto got = env_.read(fd.get(), buffer, sizeof buffer);
    if (!got)
      return Error{"cannot read " + path_ + "/" + name + ": " + got.error().message,
                   got.error().code};
    if (*got == 0) break;
    file.data.append(buffer, *got);
    if (file.data.size() > max_octets)
      return Error{"the file grew over the limit while read", ErrorCode::Refused};
  }
  return file;
}

void Maildrop::remove(const std::string& name) const { (void)env_.remove_at(dir_fd_, name); }

void Maildrop::set_aside(const std::string& name) const {
  (void)env_.make_directory_at(root_fd_, "corrupt", 0700);
  auto corrupt = env_.open_at(root_fd_, "corrupt", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
  const std::string kept = "maildrop-" + name;
  if (!corrupt || !env_.rename_at(dir_fd_, name, *corrupt, kept, true))
    (void)env_.remove_at(dir_fd_, name);
  if (corrupt) (void)env_.close(*corrupt);
}

}  // namespace portrelay::spool
