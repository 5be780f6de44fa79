#pragma once
// A plain blocking SMTP submission, as an application on the VM would do it. Used by
// `portrelay demo` (and the benchmarks) against the relay's real listener.
#include <chrono>
#include <string>
#include <vector>

namespace portrelay::demo {

struct SubmitResult {
  bool delivered = false;               // final reply was 2xx
  std::string final_reply;              // the reply to the end of data (or the first failure)
  std::vector<std::string> transcript;  // "C: ..." / "S: ..." lines, for display
};

// EHLO, MAIL, RCPT, DATA, content, QUIT. `content` uses CRLF line endings.
SubmitResult submit_message(const std::string& host, std::uint16_t port, const std::string& from,
                            const std::string& to, const std::string& content,
                            std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace portrelay::demo
