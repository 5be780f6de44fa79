#pragma once
// The users file for client AUTH: one "username:$scrypt$..." per line; blank lines and
// lines starting with '#' are ignored. Plaintext passwords are refused.
#include <uv.h>

#include <map>
#include <memory>
#include <string>

#include "portrelay/server/authenticator.hpp"

namespace portrelay::server {

// Parses the file; throws std::runtime_error("path:line: what is wrong").
std::map<std::string, std::string> parse_users_file(const std::string& path);
// An Authenticator over the file's users; hashing runs on a PasswordCheckPool of its own
// (not libuv's thread pool, which name resolution needs).
std::unique_ptr<Authenticator> load_users_file(uv_loop_t* loop, const std::string& path);

}  // namespace portrelay::server
