#pragma once
// The users file for client AUTH: one "username:$scrypt$..." per line; blank lines and
// lines starting with '#' are ignored. Plaintext passwords are refused.
//
// A line may end with a third field, the envelope senders that user may use, as sender
// patterns separated by commas (config/sender_pattern.hpp); for that user the list replaces
// [server] allowed_senders:
//
//   shop:$scrypt$ln=15,r=8,p=1$...$...:*@shop.example.com,billing@example.com
//
// A hash never holds ':', so a line without the field reads as before, and a portrelay
// that predates the field refuses such a file instead of ignoring the restriction.
#include <uv.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "portrelay/server/authenticator.hpp"

namespace portrelay::server {

struct UserEntry {
  std::string hash;
  std::vector<std::string> allowed_senders;  // empty: [server] allowed_senders applies
};

// Parses the file; throws std::runtime_error("path:line: what is wrong").
std::map<std::string, UserEntry> parse_users_file(const std::string& path);
// An Authenticator over the file's users; hashing runs on a PasswordCheckPool of its own
// (not libuv's thread pool, which name resolution needs).
std::unique_ptr<Authenticator> load_users_file(uv_loop_t* loop, const std::string& path);

}  // namespace portrelay::server
