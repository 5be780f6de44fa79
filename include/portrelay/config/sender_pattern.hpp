#pragma once
// Envelope sender patterns, as [[route]] senders, [server] allowed_senders and a users_file
// entry's own list write them: "billing@example.com", "*@shop.example.com", "*@*.example.com",
// "*". `*` stands for any run of characters (none included); everything else is literal and
// compared without case (domains have none, and nobody relies on it in local parts).
#include <string>
#include <string_view>
#include <vector>

namespace portrelay::config {

// Whether `address` (an envelope sender without angle brackets) matches `pattern`. The null
// sender ("") matches nothing: it is nobody's identity (bounces use it).
bool sender_matches(std::string_view pattern, std::string_view address);
// Whether any of `patterns` matches `address`.
bool any_sender_matches(const std::vector<std::string>& patterns, std::string_view address);
// Why `pattern` cannot be a sender pattern ("" when it can): empty, over 254 characters,
// spaces, control characters or angle brackets.
std::string sender_pattern_problem(std::string_view pattern);

}  // namespace portrelay::config
