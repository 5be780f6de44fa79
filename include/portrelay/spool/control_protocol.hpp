#pragma once
// The control socket's line protocol (control_server.hpp), both ends, pure. One request line
// from `portrelay queue`, one answer line from the daemon:
//   request:  "<verb>[ <argument>]"        verbs: retry, delete, bounce
//   answer:   "ok <what happened>" | "error <why>"
// Anything else, including no answer at all (the daemon closed the connection, or died),
// is Malformed: the CLI says so and exits 75, since the request may or may not have been
// carried out.
#include <string>
#include <string_view>

namespace portrelay::spool {

constexpr std::size_t kMaxControlLine = 512;

struct ControlRequest {
  std::string verb;
  std::string argument;  // "" when none
};
// `line` without its line end; a trailing CR is dropped. Splits at the first space.
ControlRequest parse_control_request(std::string_view line);

struct ControlAnswer {
  enum class Kind { Ok, Error, Malformed };
  Kind kind = Kind::Malformed;
  std::string text;  // after "ok " / "error "; for Malformed, what was received, printable
};
ControlAnswer parse_control_answer(std::string_view answer);

}  // namespace portrelay::spool
