#include "support/channel.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace portrelay::test {

bool wait_for_io(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  using namespace std::chrono;
  while (true) {
    // Round up so a sub-millisecond remainder still sleeps instead of spinning.
    auto remaining = ceil<milliseconds>(deadline - steady_clock::now());
    int wait_ms = static_cast<int>(std::max<milliseconds::rep>(remaining.count(), 0));
    pollfd pfd{fd, events, 0};
    int ready = ::poll(&pfd, 1, wait_ms);
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return false;
    if (ready == 0 && steady_clock::now() >= deadline) return false;
  }
}

ReadResult PlainChannel::read(char* buffer, std::size_t size, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (!wait_for_io(fd_, POLLIN, deadline)) return {IoStatus::kTimeout, 0};
  while (true) {
    ssize_t n = ::recv(fd_, buffer, size, MSG_DONTWAIT);
    if (n > 0) return {IoStatus::kOk, static_cast<std::size_t>(n)};
    if (n == 0) return {IoStatus::kClosed, 0};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoStatus::kTimeout, 0};
    // A reset after the peer went away reads like a close to the SMTP layer.
    if (errno == ECONNRESET) return {IoStatus::kClosed, 0};
    return {IoStatus::kError, 0};
  }
}

bool PlainChannel::write_all(std::string_view bytes, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_for_io(fd_, POLLOUT, deadline)) return false;
      continue;
    }
    return false;
  }
  return true;
}

}  // namespace portrelay::test
