#pragma once
// The content of one message while it is relayed. Small bodies stay in memory; past
// `memory_limit` the content moves to an unlinked temporary file, so a session's memory
// stays bounded whatever the message size. The body can be read any number of times
// (a failover replays it to the next endpoint).
#include <cstdint>
#include <string>
#include <string_view>

namespace portrelay::relay {

class MessageBody {
 public:
  static constexpr std::size_t kDefaultMemoryLimit = 256 * 1024;
  static constexpr std::size_t kKeptCapacity = 64 * 1024;  // reused across messages

  explicit MessageBody(std::size_t memory_limit = kDefaultMemoryLimit,
                       std::string temp_dir = default_temp_dir());
  ~MessageBody();
  MessageBody(const MessageBody&) = delete;
  MessageBody& operator=(const MessageBody&) = delete;

  // Returns false (and stays failed) if the temporary file cannot be written.
  bool append(std::string_view content);
  void clear();
  std::uint64_t size() const { return size_; }
  bool failed() const { return failed_; }
  bool spilled() const { return fd_ >= 0; }
  const std::string& error() const { return error_; }

  // Makes the body `size` octets of an existing file from `offset` on (a queued message in
  // the spool), read in place rather than copied; append() then fails. False (and
  // failed()) if the file cannot be opened.
  bool attach_file(const std::string& path, std::uint64_t offset, std::uint64_t size);
  // The same with a file the caller opened (the spool opens its files itself, never by
  // path); the body owns `fd` from then on.
  bool attach_fd(int fd, std::uint64_t offset, std::uint64_t size);

  // Copies up to `max` bytes starting at `offset` into `out` (replacing its content).
  bool read(std::uint64_t offset, std::size_t max, std::string& out) const;

  static const std::string& default_temp_dir();  // $TMPDIR (read once) or /tmp

 private:
  bool spill();

  std::size_t memory_limit_;
  std::string temp_dir_;
  std::string memory_;
  int fd_ = -1;
  std::uint64_t file_offset_ = 0;  // where the body starts in fd_ (attach_file)
  bool attached_ = false;
  std::uint64_t size_ = 0;
  bool failed_ = false;
  std::string error_;
};

}  // namespace portrelay::relay
