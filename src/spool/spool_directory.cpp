#include "portrelay/spool/spool_directory.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "portrelay/base/log.hpp"

namespace portrelay::spool {
namespace {

constexpr std::string_view kStateSuffix = ".state";

std::string why(const std::string& what) { return what + ": " + std::strerror(errno); }

const char* kind_of(mode_t mode) {
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

Error refused(mode_t mode) {
  Error error{std::string("cannot open: ") + kind_of(mode) + ", not a regular file (refused)",
              ErrorCode::Refused};
  errno = S_ISLNK(mode) ? ELOOP : EINVAL;
  return error;
}

// The configured root, as given (the administrator's path); every name below it through
// descriptors.
// Errors as std::system_error (a std::runtime_error reading "what: strerror") so that
// `portrelay queue` can tell "no spool yet" and "not yours to read" from the rest.
[[noreturn]] void fail(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

int open_root(Env& env, const std::string& path, bool create) {
  if (create) {
    auto made = env.make_directory_at(AT_FDCWD, path, 0700);
    if (!made && made.code() != ErrorCode::AlreadyExists)
      fail("cannot create spool directory " + path);
  }
  auto fd = env.open_at(AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_NONBLOCK, 0);
  if (!fd) fail("cannot open spool directory " + path);
  return *fd;
}

// `made` says whether this call created it (then it may be given to the spool's owner).
int open_subdirectory(Env& env, int root_fd, const std::string& root, const char* name, bool create,
                      bool& made) {
  const std::string path = root + "/" + name;
  if (create) {
    auto created = env.make_directory_at(root_fd, name, 0700);
    made = created.ok();
    if (!made && created.code() != ErrorCode::AlreadyExists)
      fail("cannot create spool directory " + path);
  }
  auto fd = open_spool_subdirectory(env, root_fd, name);
  if (fd) return *fd;
  if (fd.error().code == ErrorCode::Refused)
    fail("refused spool directory " + path + " (a symbolic link or not a directory)");
  fail("cannot open spool directory " + path);
}

// The names in a directory, read through a fresh descriptor of it (never by path).
std::vector<std::string> list(int dir_fd) {
  std::vector<std::string> names;
  int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return names;
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return names;
  }
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());  // ids are time-ordered
  return names;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status write_all(int fd, std::string_view data) { return write_all(Env::posix(), fd, data); }

Result<std::string> read_file(const std::string& path, std::size_t max) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{why("cannot open " + path)};
  std::string text;
  char buffer[16384];
  while (text.size() < max) {
    ssize_t got = ::read(fd, buffer, std::min(sizeof buffer, max - text.size()));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      Error error{why("cannot read " + path)};
      ::close(fd);
      return error;
    }
    if (got == 0) break;
    text.append(buffer, static_cast<std::size_t>(got));
  }
  ::close(fd);
  return text;
}

Result<int> open_spool_file(int dir_fd, const std::string& name, int flags, mode_t mode) {
  return open_spool_file(Env::posix(), dir_fd, name, flags, mode);
}

Result<int> open_spool_file(Env& env, int dir_fd, const std::string& name, int flags, mode_t mode) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
    errno = EINVAL;
    return Error{"cannot open: not a file name", ErrorCode::InvalidArgument};
  }
  // Without O_CREAT the name exists: look at it without following or opening it first, so
  // a FIFO or device is never opened at all. O_NONBLOCK and the fstat below close the race
  // with a name replaced in between; O_CREAT|O_EXCL never opens an existing name.
  if ((flags & O_CREAT) == 0) {
    struct stat info {};
    if (::fstatat(dir_fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
      const int error = errno;
      Error result = os_error("cannot open", error);
      errno = error;
      return result;
    }
    if (!S_ISREG(info.st_mode)) return refused(info.st_mode);
  }
  // O_CREAT|O_EXCL makes a new regular file or fails: it needs no O_NONBLOCK (the file is
  // then plain blocking, as the writer expects). Any other open gets it, and keeps it: it
  // changes nothing for a regular file, and clearing it cost two calls per message.
  const bool creates = (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL);
  auto opened = env.open_at(dir_fd, name, flags | O_NOFOLLOW | (creates ? 0 : O_NONBLOCK), mode);
  if (!opened) {
    const int error = errno;
    Error result{"cannot open: " + opened.error().message, opened.error().code};
    errno = error;
    return result;
  }
  const int fd = *opened;
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return refused(info.st_mode);
  }
  return fd;
}

int open_spool_subdirectory(int dir_fd, const std::string& name) {
  auto fd = open_spool_subdirectory(Env::posix(), dir_fd, name);
  return fd ? *fd : -1;
}

Result<int> open_spool_subdirectory(Env& env, int dir_fd, const std::string& name) {
  return env.open_at(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK, 0);
}

Result<std::string> read_spool_file(int dir_fd, const std::string& name, std::size_t max) {
  return read_spool_file(Env::posix(), dir_fd, name, max);
}

Result<std::string> read_spool_file(Env& env, int dir_fd, const std::string& name,
                                    std::size_t max) {
  auto fd = open_spool_file(env, dir_fd, name, O_RDONLY);
  if (!fd) return fd.error();
  std::string text;
  char buffer[16384];
  while (text.size() < max) {
    auto got = env.read(*fd, buffer, std::min(sizeof buffer, max - text.size()));
    if (!got) {
      Error error{"cannot read: " + got.error().message, got.error().code};
      (void)env.close(*fd);
      return error;
    }
    if (*got == 0) break;
    text.append(buffer, *got);
  }
  (void)env.close(*fd);
  return text;
}

SpoolDirectory::SpoolDirectory(std::string root, bool create, Env& env)
    : root_(std::move(root)), env_(env) {
  try {
    root_fd_ = open_root(env_, root_, create);
    struct stat info {};
    if (::fstat(root_fd_, &info) != 0) fail("cannot stat spool directory " + root_);
    owner_uid_ = info.st_uid;
    owner_gid_ = info.st_gid;
    // A root daemon making a subdirectory of a user's spool gives it to that user.
    auto subdirectory = [&](const char* name) {
      bool made = false;
      const int fd = open_subdirectory(env_, root_fd_, root_, name, create, made);
      if (made && !give_to_owner(fd)) {
        const int error = errno;
        ::close(fd);
        errno = error;
        fail("cannot give spool directory " + root_ + "/" + name + " to the spool's owner");
      }
      return fd;
    };
    tmp_fd_ = subdirectory("tmp");
    queue_fd_ = subdirectory("queue");
    failed_fd_ = subdirectory("failed");
    corrupt_fd_ = subdirectory("corrupt");
  } catch (...) {
    for (int fd : {root_fd_, tmp_fd_, queue_fd_, failed_fd_, corrupt_fd_})
      if (fd >= 0) ::close(fd);
    throw;
  }
}

bool SpoolDirectory::give_to_owner(int fd) const {
  const uid_t self = ::geteuid();
  if (self != 0 || owner_uid_ == self) return true;
  return ::fchown(fd, owner_uid_, owner_gid_) == 0;
}

SpoolDirectory::~SpoolDirectory() {
  for (int fd : {root_fd_, tmp_fd_, queue_fd_, failed_fd_, corrupt_fd_, lock_fd_})
    if (fd >= 0) ::close(fd);
}

bool SpoolDirectory::try_lock() {
  if (lock_fd_ >= 0) return true;
  const std::string path = root_ + "/lock";
  // Made here (and only then given to the owner), or the one a daemon made before: never
  // a name that leads elsewhere.
  int fd = -1;
  if (auto created = open_spool_file(env_, root_fd_, "lock", O_RDWR | O_CREAT | O_EXCL, 0600)) {
    fd = *created;
    if (!give_to_owner(fd)) {
      const std::string error = why("cannot give " + path + " to the spool's owner");
      ::close(fd);
      (void)env_.remove_at(root_fd_, "lock");
      throw std::runtime_error(error);
    }
  } else if (created.error().code == ErrorCode::AlreadyExists) {
    auto existing = open_spool_file(env_, root_fd_, "lock", O_RDWR);
    if (!existing) throw std::runtime_error(path + ": " + existing.error().message);
    fd = *existing;
  } else {
    throw std::runtime_error(path + ": " + created.error().message);
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return false;
  }
  lock_fd_ = fd;
  return true;
}

bool SpoolDirectory::locked_by_other() const {
  if (lock_fd_ >= 0) return false;
  auto fd = open_spool_file(env_, root_fd_, "lock", O_RDONLY);
  if (!fd) return false;  // no lock file: no daemon ever ran here
  bool held = ::flock(*fd, LOCK_EX | LOCK_NB) != 0;
  ::close(*fd);  // releases ours if we got it
  return held;
}

std::optional<std::uint64_t> SpoolDirectory::free_bytes() const {
  auto free = env_.free_bytes(queue_fd_);
  if (!free) return std::nullopt;
  return *free;
}

Result<StoredMessage> SpoolDirectory::read_message(const std::string& dir,
                                                   const std::string& id) const {
  auto opened = open_spool_file(env_, area_fd(dir), id, O_RDONLY);
  if (!opened) return opened.error();
  const int fd = *opened;
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    Error error = os_error("cannot stat", errno);
    (void)env_.close(fd);
    return error;
  }
  // The header is small; read its first block and grow only for a long envelope.
  std::string head;
  std::size_t want = 4096;
  Result<RecordLayout> layout = Error{""};
  for (;;) {
    head.resize(want);
    auto got = env_.read_at(fd, head.data(), want, 0);
    if (!got) {
      (void)env_.close(fd);
      return Error{"cannot read: " + got.error().message, got.error().code};
    }
    head.resize(*got);
    layout = parse_header(head);
    bool may_grow = !layout && *got == want && want < (1u << 20);
    if (!may_grow) break;
    want *= 4;
  }
  if (!layout) {
    (void)env_.close(fd);
    return layout.error();  // Corruption
  }
  std::string tail(kEndMarker.size(), '\0');
  auto size = static_cast<std::uint64_t>(info.st_size);
  Result<std::size_t> got = size >= tail.size()
                                ? env_.read_at(fd, tail.data(), tail.size(), size - tail.size())
                                : Result<std::size_t>(std::size_t{0});
  (void)env_.close(fd);
  if (!got) return Error{"cannot read: " + got.error().message, got.error().code};
  tail.resize(*got);
  if (auto complete = check_complete(*layout, size, tail); !complete) return complete.error();
  if (layout->envelope.id != id)
    return Error{"file name does not match its queue id", ErrorCode::Corruption};

  StoredMessage message;
  message.layout = std::move(*layout);
  message.modified_ms =
      static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1000 + info.st_mtim.tv_nsec / 1000000;
  message.failed_area = dir == "failed";
  const std::size_t recipients = message.layout.envelope.recipients.size();
  message.state.recipients.resize(recipients);
  if (auto text = read_spool_file(env_, area_fd(dir), id + std::string(kStateSuffix))) {
    if (auto state = parse_state(*text, recipients))
      message.state = std::move(*state);
    else
      log::warn("spool_state_ignored", {{"queue_id", id}, {"detail", state.error().message}});
  } else if (text.error().code != ErrorCode::NotFound) {
    log::warn("spool_state_ignored", {{"queue_id", id}, {"detail", text.error().message}});
  }
  return message;
}

Result<StoredMessage> SpoolDirectory::load(const std::string& id) const {
  if (id.empty() || id.find('/') != std::string::npos || id[0] == '.')
    return Error{"not a queue id", ErrorCode::InvalidArgument};
  auto message = read_message("queue", id);
  if (message) return message;
  auto failed = read_message("failed", id);
  if (failed) return failed;
  return message.error();
}

void SpoolDirectory::move_to_corrupt(const std::string& dir, const std::string& name) {
  const int from_fd = area_fd(dir);
  const std::string to = dir + "-" + name;
  if (auto moved = env_.rename_at(from_fd, name, corrupt_fd_, to, true); !moved)
    log::error("spool_corrupt_move_failed",
               {{"file", root_ + "/" + dir + "/" + name}, {"detail", moved.error().message}});
  const std::string state = name + std::string(kStateSuffix);
  (void)env_.rename_at(from_fd, state, corrupt_fd_, to + std::string(kStateSuffix), true);
}

RecoveryReport SpoolDirectory::read_all(bool repair) {
  RecoveryReport report;
  for (const auto& name : list(tmp_fd_)) {
    if (repair) (void)env_.remove_at(tmp_fd_, name);
    ++report.removed_partial;
  }
  for (const char* dir : {"queue", "failed"}) {
    const auto names = list(area_fd(dir));
    for (const auto& name : names) {
      if (ends_with(name, kStateSuffix)) {
        // A state file without its message: the message was removed and the crash came
        // before the state file went too.
        const std::string id = name.substr(0, name.size() - kStateSuffix.size());
        if (repair && !std::binary_search(names.begin(), names.end(), id))
          (void)env_.remove_at(area_fd(dir), name);
        continue;
      }
      auto message = read_message(dir, name);
      if (!message && message.error().code != ErrorCode::Corruption) {
        // An I/O error (EIO, EMFILE, EACCES) or a name that is not a regular file says
        // nothing about a message's content: leave it where it is for the next start, do
        // not call it corrupt.
        report.unreadable.push_back(std::string(dir) + "/" + name + ": " + message.error().message);
        report.permission_denied += message.error().code == ErrorCode::PermissionDenied;
        continue;
      }
      if (!message) {
        report.corrupt.push_back(std::string(dir) + "/" + name + ": " + message.error().message);
        if (repair) move_to_corrupt(dir, name);
        continue;
      }
      (std::string(dir) == "queue" ? report.messages : report.failed)
          .push_back(std::move(*message));
    }
  }
  return report;
}

}  // namespace portrelay::spool
