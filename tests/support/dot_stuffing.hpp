#pragma once
// SMTP transparency (RFC 5321 4.5.2) for the test peers. Lines are CRLF-separated; a bare LF
// does not start a new line here, so smuggling-style input passes through unchanged.
#include <string>
#include <string_view>

namespace portrelay::test {

// Adds one '.' in front of every line that starts with '.'.
std::string dot_stuff(std::string_view content);
// Removes one leading '.' from every line that has one.
std::string dot_unstuff(std::string_view data);

}  // namespace portrelay::test
