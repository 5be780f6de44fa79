// libFuzzer target: the control socket's line protocol (spool/control_protocol.hpp). A
// request splits into a verb without spaces and the rest; an answer is Ok, Error or
// Malformed, never an exception, and what it carries is one printable-safe line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "portrelay/spool/control_protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace portrelay::spool;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const ControlRequest request = parse_control_request(input);
  if (request.verb.find(' ') != std::string::npos) std::abort();
  if (request.verb.size() + request.argument.size() > kMaxControlLine) std::abort();
  const ControlAnswer answer = parse_control_answer(input);
  if (answer.kind == ControlAnswer::Kind::Malformed)
    for (char c : answer.text)
      if (c < 0x20 || c == 0x7f) std::abort();
  if (answer.kind != ControlAnswer::Kind::Malformed &&
      answer.text.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
    std::abort();
  return 0;
}
