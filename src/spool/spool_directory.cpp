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

#include "portrelay/base/log.hpp"

namespace portrelay::spool {
namespace {

constexpr std::string_view kStateSuffix = ".state";

std::string why(const std::string& what) { return what + ": " + std::strerror(errno); }

int open_dir(const std::string& path, bool create) {
  if (create && ::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error(why("cannot create spool directory " + path));
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(why("cannot open spool directory " + path));
  return fd;
}

std::vector<std::string> list(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return names;
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

Result<bool> write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t written = ::write(fd, data.data(), data.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return Error{why("write")};
    }
    data.remove_prefix(static_cast<std::size_t>(written));
  }
  return true;
}

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

SpoolDirectory::SpoolDirectory(std::string root, bool create) : root_(std::move(root)) {
  try {
    root_fd_ = open_dir(root_, create);
    tmp_fd_ = open_dir(root_ + "/tmp", create);
    queue_fd_ = open_dir(root_ + "/queue", create);
    failed_fd_ = open_dir(root_ + "/failed", create);
    ::close(open_dir(root_ + "/corrupt", create));
  } catch (...) {
    for (int fd : {root_fd_, tmp_fd_, queue_fd_, failed_fd_})
      if (fd >= 0) ::close(fd);
    throw;
  }
  struct stat info {};
  if (::fstat(root_fd_, &info) == 0) {
    owner_uid_ = info.st_uid;
    owner_gid_ = info.st_gid;
  }
}

void SpoolDirectory::give_to_owner(int fd) const {
  if (::geteuid() == 0 && owner_uid_ != 0) (void)::fchown(fd, owner_uid_, owner_gid_);
}

SpoolDirectory::~SpoolDirectory() {
  for (int fd : {root_fd_, tmp_fd_, queue_fd_, failed_fd_, lock_fd_})
    if (fd >= 0) ::close(fd);
}

bool SpoolDirectory::try_lock() {
  if (lock_fd_ >= 0) return true;
  int fd = ::open((root_ + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error(why("cannot open " + root_ + "/lock"));
  give_to_owner(fd);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return false;
  }
  lock_fd_ = fd;
  return true;
}

bool SpoolDirectory::locked_by_other() const {
  if (lock_fd_ >= 0) return false;
  int fd = ::open((root_ + "/lock").c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;  // no lock file: no daemon ever ran here
  bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0;
  ::close(fd);  // releases ours if we got it
  return held;
}

std::optional<std::uint64_t> SpoolDirectory::free_bytes() const {
  struct statvfs info {};
  if (::fstatvfs(queue_fd_, &info) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(info.f_bavail) * info.f_frsize;
}

Result<StoredMessage> SpoolDirectory::read_message(const std::string& dir,
                                                   const std::string& id) const {
  const std::string path = root_ + "/" + dir + "/" + id;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{why("cannot open")};
  struct stat info {};
  ::fstat(fd, &info);
  // The header is small; read its first block and grow only for a long envelope.
  std::string head;
  std::size_t want = 4096;
  Result<RecordLayout> layout = Error{""};
  for (;;) {
    head.resize(want);
    ssize_t got = ::pread(fd, head.data(), want, 0);
    if (got < 0) {
      ::close(fd);
      return Error{why("cannot read")};
    }
    head.resize(static_cast<std::size_t>(got));
    layout = parse_header(head);
    bool may_grow = !layout && static_cast<std::size_t>(got) == want && want < (1u << 20);
    if (!may_grow) break;
    want *= 4;
  }
  if (!layout) {
    ::close(fd);
    return layout.error();
  }
  std::string tail(kEndMarker.size(), '\0');
  auto size = static_cast<std::uint64_t>(info.st_size);
  ssize_t got = size >= tail.size()
                    ? ::pread(fd, tail.data(), tail.size(), static_cast<off_t>(size - tail.size()))
                    : 0;
  ::close(fd);
  if (got < 0) return Error{why("cannot read")};
  tail.resize(static_cast<std::size_t>(std::max<ssize_t>(got, 0)));
  if (auto complete = check_complete(*layout, size, tail); !complete) return complete.error();
  if (layout->envelope.id != id) return Error{"file name does not match its queue id"};

  StoredMessage message;
  message.layout = std::move(*layout);
  message.modified_ms =
      static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1000 + info.st_mtim.tv_nsec / 1000000;
  message.failed_area = dir == "failed";
  const std::size_t recipients = message.layout.envelope.recipients.size();
  message.state.recipients.resize(recipients);
  if (auto text = read_file(root_ + "/" + dir + "/" + id + std::string(kStateSuffix))) {
    if (auto state = parse_state(*text, recipients))
      message.state = std::move(*state);
    else
      log::warn("spool_state_ignored", {{"queue_id", id}, {"detail", state.error().message}});
  }
  return message;
}

Result<StoredMessage> SpoolDirectory::load(const std::string& id) const {
  if (id.empty() || id.find('/') != std::string::npos || id[0] == '.')
    return Error{"not a queue id"};
  auto message = read_message("queue", id);
  if (message) return message;
  auto failed = read_message("failed", id);
  if (failed) return failed;
  return message.error();
}

void SpoolDirectory::move_to_corrupt(const std::string& dir, const std::string& name) {
  const std::string from = root_ + "/" + dir + "/" + name;
  const std::string to = root_ + "/corrupt/" + dir + "-" + name;
  if (::rename(from.c_str(), to.c_str()) != 0)
    log::error("spool_corrupt_move_failed", {{"file", from}, {"detail", std::strerror(errno)}});
  ::rename((from + std::string(kStateSuffix)).c_str(), (to + std::string(kStateSuffix)).c_str());
}

RecoveryReport SpoolDirectory::read_all(bool repair) {
  RecoveryReport report;
  for (const auto& name : list(root_ + "/tmp")) {
    if (repair) ::unlinkat(tmp_fd_, name.c_str(), 0);
    ++report.removed_partial;
  }
  for (const char* dir : {"queue", "failed"}) {
    const auto names = list(root_ + "/" + dir);
    for (const auto& name : names) {
      if (ends_with(name, kStateSuffix)) {
        // A state file without its message: the message was removed and the crash came
        // before the state file went too.
        const std::string id = name.substr(0, name.size() - kStateSuffix.size());
        if (repair && !std::binary_search(names.begin(), names.end(), id))
          ::unlinkat(std::string(dir) == "queue" ? queue_fd_ : failed_fd_, name.c_str(), 0);
        continue;
      }
      auto message = read_message(dir, name);
      if (!message && message.error().message.rfind("cannot ", 0) == 0) {
        // An I/O error (EIO, EMFILE, EACCES) says nothing about the file's content: leave
        // it where it is for the next start, do not call it corrupt.
        report.unreadable.push_back(std::string(dir) + "/" + name + ": " + message.error().message);
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
