#include "portrelay/spool/control_protocol.hpp"

namespace portrelay::spool {
namespace {

std::string_view without_line_end(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  return line;
}

// What a broken daemon sent, fit for one line of an error message.
std::string printable(std::string_view bytes) {
  std::string out;
  for (char c : bytes.substr(0, 200)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

}  // namespace

ControlRequest parse_control_request(std::string_view line) {
  line = without_line_end(line.substr(0, kMaxControlLine));
  const auto space = line.find(' ');
  if (space == std::string_view::npos) return {std::string(line), ""};
  return {std::string(line.substr(0, space)), std::string(line.substr(space + 1))};
}

ControlAnswer parse_control_answer(std::string_view answer) {
  answer = without_line_end(answer);
  if (answer.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
    return {ControlAnswer::Kind::Malformed, printable(answer)};
  if (answer.starts_with("ok ")) return {ControlAnswer::Kind::Ok, std::string(answer.substr(3))};
  if (answer.starts_with("error "))
    return {ControlAnswer::Kind::Error, std::string(answer.substr(6))};
  return {ControlAnswer::Kind::Malformed, printable(answer)};
}

}  // namespace portrelay::spool
