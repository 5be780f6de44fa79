#pragma once
// Verifies client AUTH credentials. Verification may be slow on purpose (password
// hashing), so it is asynchronous: the answer comes back on the loop thread.
#include <functional>
#include <string>

namespace portrelay::server {

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  virtual void verify(const std::string& username, const std::string& password,
                      std::function<void(bool ok)> done) const = 0;
};

}  // namespace portrelay::server
