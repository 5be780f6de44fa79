#include "portrelay/server/users_file.hpp"

#include <algorithm>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "portrelay/config/sender_pattern.hpp"
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
  UsersFileAuthenticator(uv_loop_t* loop, std::map<std::string, UserEntry> users)
      : users_(std::move(users)), pool_(loop, pool_limits()), busy_timer_(loop) {
    decoy_hash();
  }

  void verify(const std::string& username, const std::string& password,
              std::function<void(AuthResult)> done) const override {
    auto it = users_.find(username);
    const bool known = it != users_.end();
    std::string hash = known ? it->second.hash : decoy_hash();
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

  const std::vector<std::string>* allowed_senders(const std::string& username) const override {
    auto it = users_.find(username);
    if (it == users_.end() || it->second.allowed_senders.empty()) return nullptr;
    return &it->second.allowed_senders;
  }

 private:
  std::map<std::string, UserEntry> users_;
  mutable PasswordCheckPool pool_;
  mutable std::vector<std::function<void(AuthResult)>> busy_;
  mutable net::Timer busy_timer_;
};

}  // namespace

std::map<std::string, UserEntry> parse_users_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw std::runtime_error(path + ": cannot read users file");
  std::map<std::string, UserEntry> users;
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
    UserEntry entry;
    if (const auto senders = hash.find(':'); senders != std::string::npos) {
      std::string list = hash.substr(senders + 1);
      hash.resize(senders);
      std::size_t start = 0;
      while (start <= list.size()) {
        const std::size_t comma = std::min(list.find(',', start), list.size());
        std::string pattern = list.substr(start, comma - start);
        while (!pattern.empty() && pattern.front() == ' ') pattern.erase(0, 1);
        while (!pattern.empty() && pattern.back() == ' ') pattern.pop_back();
        if (const std::string problem = config::sender_pattern_problem(pattern); !problem.empty())
          throw std::runtime_error(where + "allowed sender \"" + pattern + "\" of \"" + user +
                                   "\" " + problem +
                                   " (write user:hash:*@example.com,billing@example.org)");
        entry.allowed_senders.push_back(std::move(pattern));
        start = comma + 1;
      }
    }
    if (!is_password_hash(hash))
      throw std::runtime_error(
          where + "password of \"" + user +
          "\" is not a $scrypt$ hash (make one with `portrelay hash-password`)");
    entry.hash = std::move(hash);
    if (!users.emplace(user, std::move(entry)).second)
      throw std::runtime_error(where + "user \"" + user + "\" is listed twice");
  }
  return users;
}

std::unique_ptr<Authenticator> load_users_file(uv_loop_t* loop, const std::string& path) {
  return std::make_unique<UsersFileAuthenticator>(loop, parse_users_file(path));
}

}  // namespace portrelay::server
