#pragma once
// Standard base64 (RFC 4648, with padding) for SMTP AUTH in the test peers.
#include <optional>
#include <string>
#include <string_view>

namespace portrelay::test {

std::string base64_encode(std::string_view bytes);
// nullopt on characters outside the alphabet or a bad length.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace portrelay::test
