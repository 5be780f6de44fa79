#include "portrelay/relay/message_body.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace portrelay::relay {

MessageBody::MessageBody(std::size_t memory_limit, std::string temp_dir)
    : memory_limit_(memory_limit), temp_dir_(std::move(temp_dir)) {}

MessageBody::~MessageBody() { clear(); }

const std::string& MessageBody::default_temp_dir() {
  // Read once: every message builds bodies, and the environment of a running process does
  // not change under it.
  static const std::string dir = []() -> std::string {
    const char* set = std::getenv("TMPDIR");
    return set && *set ? set : "/tmp";
  }();
  return dir;
}

void MessageBody::clear() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  file_offset_ = 0;
  attached_ = false;
  memory_.clear();
  // Keep a small buffer for the next message (no regrowth from nothing every time), but
  // give back large ones: an idle session should not hold up to memory_limit.
  if (memory_.capacity() > kKeptCapacity) memory_.shrink_to_fit();
  size_ = 0;
  failed_ = false;
  error_.clear();
}

bool MessageBody::spill() {
  // O_TMPFILE: the file has no name, so nothing is left behind after a crash.
  fd_ = ::open(temp_dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    std::string pattern = temp_dir_ + "/portrelay-body-XXXXXX";
    fd_ = ::mkostemp(pattern.data(), O_CLOEXEC);
    if (fd_ >= 0) ::unlink(pattern.c_str());
  }
  if (fd_ < 0) {
    failed_ = true;
    error_ = "cannot create temporary file in " + temp_dir_ + ": " + std::strerror(errno);
    return false;
  }
  std::string pending = std::move(memory_);
  memory_.clear();
  memory_.shrink_to_fit();
  std::uint64_t stored = size_;
  size_ = 0;
  if (!append(pending)) return false;
  size_ = stored;
  return true;
}

bool MessageBody::attach_file(const std::string& path, std::uint64_t offset, std::uint64_t size) {
  clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    failed_ = true;
    error_ = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  return attach_fd(fd, offset, size);
}

bool MessageBody::attach_fd(int fd, std::uint64_t offset, std::uint64_t size) {
  clear();
  fd_ = fd;
  file_offset_ = offset;
  attached_ = true;
  size_ = size;
  return true;
}

bool MessageBody::append(std::string_view content) {
  if (failed_) return false;
  if (attached_) {
    failed_ = true;
    error_ = "the body is a queued file and cannot grow";
    return false;
  }
  if (fd_ < 0 && memory_.size() + content.size() <= memory_limit_) {
    memory_.append(content);
    size_ += content.size();
    return true;
  }
  if (fd_ < 0 && !spill()) return false;
  const char* data = content.data();
  std::size_t left = content.size();
  while (left > 0) {
    ssize_t written = ::write(fd_, data, left);
    if (written < 0) {
      if (errno == EINTR) continue;
      failed_ = true;
      error_ = std::string("cannot write temporary file: ") + std::strerror(errno);
      return false;
    }
    data += written;
    left -= static_cast<std::size_t>(written);
  }
  size_ += content.size();
  return true;
}

bool MessageBody::read(std::uint64_t offset, std::size_t max, std::string& out) const {
  out.clear();
  if (offset >= size_) return true;
  std::size_t count = static_cast<std::size_t>(std::min<std::uint64_t>(max, size_ - offset));
  if (fd_ < 0) {
    out.assign(memory_, static_cast<std::size_t>(offset), count);
    return true;
  }
  out.resize(count);
  std::size_t done = 0;
  while (done < count) {
    ssize_t got = ::pread(fd_, out.data() + done, count - done,
                          static_cast<off_t>(file_offset_ + offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    done += static_cast<std::size_t>(got);
  }
  return true;
}

}  // namespace portrelay::relay
