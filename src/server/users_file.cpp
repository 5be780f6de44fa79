#include "portrelay/server/users_file.hpp"

#include <fstream>
#include <stdexcept>

#include "portrelay/server/password_hash.hpp"

namespace portrelay::server {
namespace {

// A hash to check unknown users against, so that "no such user" takes as long as
// "wrong password" and user names cannot be probed by timing.
const std::string& decoy_hash() {
  static const std::string hash = hash_password("portrelay-decoy-password");
  return hash;
}

class UsersFileAuthenticator : public Authenticator {
 public:
  UsersFileAuthenticator(uv_loop_t* loop, std::map<std::string, std::string> users)
      : loop_(loop), users_(std::move(users)) {
    decoy_hash();
  }

  void verify(const std::string& username, const std::string& password,
              std::function<void(bool)> done) const override {
    auto it = users_.find(username);
    auto* work = new Work{};
    work->request.data = work;
    work->known = it != users_.end();
    work->hash = work->known ? it->second : decoy_hash();
    work->password = password;
    work->done = std::move(done);
    uv_queue_work(
        loop_, &work->request,
        [](uv_work_t* request) {
          auto* work = static_cast<Work*>(request->data);
          work->ok = verify_password(work->password, work->hash) && work->known;
        },
        [](uv_work_t* request, int) {
          std::unique_ptr<Work> work(static_cast<Work*>(request->data));
          work->done(work->ok);
        });
  }

 private:
  struct Work {
    uv_work_t request;
    bool known = false;
    bool ok = false;
    std::string hash;
    std::string password;
    std::function<void(bool)> done;
  };
  uv_loop_t* loop_;
  std::map<std::string, std::string> users_;
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
