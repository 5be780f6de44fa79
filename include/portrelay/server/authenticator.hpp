#pragma once
// Verifies client AUTH credentials. Verification may be slow on purpose (password
// hashing), so it is asynchronous: the answer comes back on the loop thread.
#include <functional>
#include <string>

namespace portrelay::server {

enum class AuthResult {
  Ok,       // 235
  Invalid,  // 535: unknown user or wrong password
  Busy,     // 454: too many checks waiting; the client may try again later
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // `done` runs on the loop thread, never before verify() returns.
  virtual void verify(const std::string& username, const std::string& password,
                      std::function<void(AuthResult)> done) const = 0;
};

}  // namespace portrelay::server
