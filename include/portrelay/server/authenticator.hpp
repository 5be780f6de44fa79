#pragma once
// Verifies client AUTH credentials. Verification may be slow on purpose (password
// hashing), so it is asynchronous: the answer comes back on the loop thread.
#include <functional>
#include <string>
#include <vector>

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
  // The envelope senders `username` may use, when its entry has a list of its own (it
  // replaces [server] allowed_senders); null otherwise.
  virtual const std::vector<std::string>* allowed_senders(const std::string& /*username*/) const {
    return nullptr;
  }
};

}  // namespace portrelay::server
