#include "portrelay/server/users_file.hpp"

#include <fstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "portrelay/net/timer.hpp"
#include "portrelay/server/password_check_pool.hpp"
#include "portrelay/server/password_hash.hpp"

namespace portrelay::server {
namespace {

// A hash to check unknown users against, so that "no such user" takes as long as
// "wrong password" and user names cannot be probed by timing.
const std::string& decoy_hash() {
  static const std::string hash = hash_password("portrelay-decoy-password");
  return hash;
}

// One thread for hashing on a small machine, two on a larger one: scrypt is CPU-bound and
// must leave the event loop a core. 32 waiting checks at ~50 ms each is under two seconds
// of backlog; beyond that a client gets 454 at once.
PasswordCheckPool::Limits pool_limits() {
  const unsigned cores = std::thread::hardware_concurrency();
  return {cores > 2 ? 2u : 1u, 32};
}

class UsersFileAuthenticator : public Authenticator {
 public:
  UsersFileAuthenticator(uv_loop_t* loop, std::map<std::string, std::string> users)
      : users_(std::move(users)), pool_(loop, pool_limits()), busy_timer_(loop) {
    decoy_hash();
  }

  void verify(const std::string& username, const std::string& password,
              std::function<void(AuthResult)> done) const override {
    auto it = users_.find(username);
    const bool known = it != users_.end();
    std::string hash = known ? it->second : decoy_hash();
    auto check = [password, hash = std::move(hash), known]() {
      return verify_password(password, hash) && known;
    };
    auto answer = [done](bool ok) { done(ok ? AuthResult::Ok : AuthResult::Invalid); };
    if (!pool_.submit(std::move(check), std::move(answer))) {
      // Answer on a later loop turn like every other outcome.
      busy_.push_back(std::move(done));
      if (!busy_timer_.active()) {
        busy_timer_.start(std::chrono::milliseconds(0), [this]() {
          auto busy = std::move(busy_);
          busy_.clear();
          for (auto& callback : busy) callback(AuthResult::Busy);
        });
      }
    }
  }

 private:
  std::map<std::string, std::string> users_;
  mutable PasswordCheckPool pool_;
  mutable std::vector<std::function<void(AuthResult)>> busy_;
  mutable net::Timer busy_timer_;
};

}  // namespace

std::map<std::string, std::string> parse_users_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw std::runtime_error(path + ": cannot read users file");
  std::map<std::string, std::string> users;
  std::string line;
  int number = 0;
  while (std::getline(file, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    auto colon = line.find(':');
    std::string where = path + ":" + std::to_string(number) + ": ";
    if (colon == std::string::npos || colon == 0)
      throw std::runtime_error(where + "expected \"username:hash\"");
    std::string user = line.substr(0, colon);
    std::string hash = line.substr(colon + 1);
    if (!is_password_hash(hash))
      throw std::runtime_error(
          where + "password of \"" + user +
          "\" is not a $scrypt$ hash (make one with `portrelay hash-password`)");
    if (!users.emplace(user, hash).second)
      throw std::runtime_error(where + "user \"" + user + "\" is listed twice");
  }
  return users;
}

std::unique_ptr<Authenticator> load_users_file(uv_loop_t* loop, const std::string& path) {
  return std::make_unique<UsersFileAuthenticator>(loop, parse_users_file(path));
}

}  // namespace portrelay::server
