#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace portrelay::smtp {

std::string base64_encode(std::string_view data);
// nullopt if `text` is not valid base64 (padding required, no whitespace).
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace portrelay::smtp
