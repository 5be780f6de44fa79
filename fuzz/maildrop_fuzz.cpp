// libFuzzer target: the maildrop file parser (spool/maildrop.hpp). Any local user can write
// any bytes into the maildrop, so the parser meets hostile input first. A file it takes
// encodes back to a file that parses to the same message; the content it takes is SMTP-safe
// (no NUL, CR and LF only as CRLF) and within the limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "portrelay/spool/maildrop.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace portrelay::spool;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  MaildropLimits limits;
  limits.max_content = 4096;
  limits.max_recipients = 8;
  auto parsed = parse_dropped(input, limits);
  if (!parsed) return 0;
  if (parsed->recipients.empty() || parsed->recipients.size() > limits.max_recipients) std::abort();
  if (parsed->content.size() > limits.max_content) std::abort();
  const std::string& content = parsed->content;
  for (std::size_t i = 0; i < content.size(); ++i) {
    if (content[i] == '\0') std::abort();
    if (content[i] == '\n' && (i == 0 || content[i - 1] != '\r')) std::abort();
    if (content[i] == '\r' && (i + 1 == content.size() || content[i + 1] != '\n')) std::abort();
  }
  auto again = parse_dropped(encode_dropped(*parsed), limits);
  if (!again || again->sender != parsed->sender || again->recipients != parsed->recipients ||
      again->eight_bit != parsed->eight_bit || again->content != parsed->content)
    std::abort();
  return 0;
}
