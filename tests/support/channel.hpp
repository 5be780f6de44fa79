#pragma once
// Byte channel over a connected socket. The SMTP peers talk through this interface so the
// same state machine runs over plaintext, implicit TLS or TLS started mid-session.
// A channel never owns the file descriptor.
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace portrelay::test {

enum class IoStatus { kOk, kClosed, kTimeout, kError };

struct ReadResult {
  IoStatus status = IoStatus::kError;
  std::size_t bytes = 0;  // > 0 only with kOk
};

class Channel {
 public:
  virtual ~Channel() = default;
  // Waits at most `timeout` for data, never longer.
  virtual ReadResult read(char* buffer, std::size_t size, std::chrono::milliseconds timeout) = 0;
  // Writes everything or gives up after `timeout`.
  virtual bool write_all(std::string_view bytes, std::chrono::milliseconds timeout) = 0;
  virtual bool is_tls() const = 0;
};

class PlainChannel : public Channel {
 public:
  explicit PlainChannel(int fd) : fd_(fd) {}
  ReadResult read(char* buffer, std::size_t size, std::chrono::milliseconds timeout) override;
  bool write_all(std::string_view bytes, std::chrono::milliseconds timeout) override;
  bool is_tls() const override { return false; }

 private:
  int fd_;
};

// poll() for `events` on `fd` until `deadline`. Returns false on timeout or poll error.
bool wait_for_io(int fd, short events, std::chrono::steady_clock::time_point deadline);

}  // namespace portrelay::test
