#include "portrelay/relay/recipient_window_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "portrelay/base/log.hpp"

namespace portrelay::relay {
namespace {

bool write_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

bool sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

std::string recipient_window_file_name(const std::string& upstream) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : upstream) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || (c == '.' && !out.empty())) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out + ".window";
}

RecipientWindow load_recipient_window(const std::string& dir, const std::string& upstream,
                                      RecipientWindow::Minutes now) {
  const std::string path = dir + "/" + recipient_window_file_name(upstream);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    log::info("recipient_window_empty",
              {{"upstream", upstream}, {"path", path}, {"detail", "no file: starting at 0"}});
    return {};
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string error;
  auto window = RecipientWindow::parse(text.str(), now, &error);
  if (!window) {
    log::warn("recipient_window_unreadable",
              {{"upstream", upstream},
               {"path", path},
               {"detail", error + "; starting at 0 (the provider's quota reply still pauses it)"}});
    return {};
  }
  log::info(
      "recipient_window_loaded",
      {{"upstream", upstream}, {"path", path}, {"recipients", std::to_string(window->count(now))}});
  return *window;
}

bool save_recipient_window(const std::string& dir, const std::string& upstream,
                           const RecipientWindow& window, RecipientWindow::Minutes now) {
  return save_recipient_window_text(dir, upstream, window.serialize(now));
}

bool save_recipient_window_text(const std::string& dir, const std::string& upstream,
                                const std::string& text) {
  const std::string name = recipient_window_file_name(upstream);
  const std::string path = dir + "/" + name;
  const std::string tmp = dir + "/." + name + ".tmp";
  auto failed = [&](const char* what) {
    const int saved = errno;
    log::warn("recipient_window_not_saved",
              {{"upstream", upstream},
               {"path", path},
               {"detail", std::string(what) + ": " + std::strerror(saved)}});
    return false;
  };
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return failed("mkdir");
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return failed("open");
  const bool written = write_all(fd, text) && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!written) {
    ::unlink(tmp.c_str());
    errno = saved;
    return failed("write");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int renamed = errno;
    ::unlink(tmp.c_str());
    errno = renamed;
    return failed("rename");
  }
  if (!sync_directory(dir)) return failed("fsync of the directory");
  return true;
}

RecipientWindowWriter& RecipientWindowWriter::shared() {
  static RecipientWindowWriter writer;
  return writer;
}

RecipientWindowWriter::RecipientWindowWriter() : thread_([this]() { run(); }) {}

RecipientWindowWriter::~RecipientWindowWriter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void RecipientWindowWriter::save(const std::string& dir, const std::string& upstream,
                                 const RecipientWindow& window, RecipientWindow::Minutes now) {
  std::string text = window.serialize(now);
  {
    std::lock_guard lock(mutex_);
    queued_[{dir, upstream}] = std::move(text);
  }
  changed_.notify_all();
}

void RecipientWindowWriter::flush() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this]() { return queued_.empty() && !writing_; });
}

void RecipientWindowWriter::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this]() { return stopping_ || !queued_.empty(); });
    if (queued_.empty()) return;  // stopping, and everything is written
    auto next = queued_.extract(queued_.begin());
    writing_ = true;
    lock.unlock();
    (void)save_recipient_window_text(next.key().first, next.key().second, next.mapped());
    lock.lock();
    writing_ = false;
    changed_.notify_all();
  }
}

}  // namespace portrelay::relay
