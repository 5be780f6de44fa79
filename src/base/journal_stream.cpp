// Is this file descriptor journald's stream? (sd-daemon(3), systemd.exec(5) $JOURNAL_STREAM)
#include <sys/stat.h>

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "portrelay/base/log.hpp"

namespace portrelay::log {
namespace {

// One unsigned decimal number filling all of `text`.
bool parse_number(std::string_view text, std::uint64_t& out) {
  if (text.empty()) return false;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size();
}

}  // namespace

bool is_journal_stream(int fd) {
  const char* variable = std::getenv("JOURNAL_STREAM");
  if (variable == nullptr) return false;
  // systemd writes the stream's st_dev and st_ino as two decimal numbers: "8:12345".
  const std::string_view text(variable);
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  std::uint64_t device = 0, inode = 0;
  if (!parse_number(text.substr(0, colon), device) || !parse_number(text.substr(colon + 1), inode))
    return false;
  struct stat status {};
  if (::fstat(fd, &status) != 0) return false;
  return static_cast<std::uint64_t>(status.st_dev) == device &&
         static_cast<std::uint64_t>(status.st_ino) == inode;
}

}  // namespace portrelay::log
