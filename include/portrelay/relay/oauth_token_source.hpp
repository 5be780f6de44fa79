#pragma once
// Where an endpoint's OAuth 2.0 access token comes from (XOAUTH2 / OAUTHBEARER): the first
// line of `oauth_token_file`, or of the standard output of `oauth_token_command`. Tokens
// are short-lived (about an hour at Google and Microsoft) and renewed by something else (a
// refresh helper, a sidecar), so a token is used for at most `oauth_token_lifetime` and read
// again sooner when the upstream refuses it. Shared by the connections of one endpoint.
//
// A file is read at once (it is quick). A command runs on the event loop (TokenCommand:
// uv_spawn, a pipe, a timer), never in the caller: a slow or hanging command delays only
// the connections that need this token, for at most `command_timeout`, and every request
// made while it runs waits for that one run (no second copy of the command). Loop thread
// only.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "portrelay/config/config.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/relay/token_command.hpp"

namespace portrelay::relay {

class OAuthTokenSource {
 public:
  using Clock = std::chrono::steady_clock;
  using Token = OAuthToken;
  using Callback = std::function<void(Token token)>;

  // A fetch that waits for the command. Destroying it withdraws the callback; when the
  // last one is withdrawn the run is killed (nobody wants its token any more, and a
  // shutting-down loop must not wait for it).
  class Request {
   public:
    ~Request();
    Request(const Request&) = delete;
    Request& operator=(const Request&) = delete;

   private:
    friend class OAuthTokenSource;
    Request(OAuthTokenSource* source, std::uint64_t id) : source_(source), id_(id) {}
    OAuthTokenSource* source_;  // null once answered or once the source is gone
    std::uint64_t id_;
  };

  explicit OAuthTokenSource(const config::Credentials& credentials,
                            std::chrono::milliseconds command_timeout = std::chrono::seconds(10));
  ~OAuthTokenSource();
  OAuthTokenSource(const OAuthTokenSource&) = delete;
  OAuthTokenSource& operator=(const OAuthTokenSource&) = delete;

  // The cached token while younger than the lifetime, else a freshly read one. From the
  // cache or a file, `done` is called before fetch() returns, which returns nullptr.
  // From the command, `done` is called on a later turn of `loop` (unless the returned
  // Request is destroyed first); a run already under way is joined, not repeated.
  [[nodiscard]] std::unique_ptr<Request> fetch(net::Loop& loop, Callback done);
  // The upstream refused the cached token: the next fetch() reads the source again.
  void invalidate();
  // A command is running (for tests and metrics of the herd: at most one at a time).
  bool running() const { return run_ != nullptr; }

 private:
  Token read_file() const;
  void remember(const Token& token, Clock::time_point read_at);
  void on_run_finished(Token token);
  void withdraw(std::uint64_t id);

  std::string file_;
  std::string command_;
  config::Duration lifetime_;
  std::chrono::milliseconds command_timeout_;
  std::optional<std::string> cached_;
  Clock::time_point read_at_{};

  net::Loop* run_loop_ = nullptr;
  std::unique_ptr<TokenCommand> run_;
  Clock::time_point run_started_{};
  struct Waiter {
    Callback done;
    Request* request;
  };
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, Waiter> waiters_;     // for the run under way
  std::map<std::uint64_t, Waiter> delivering_;  // being answered right now
};

}  // namespace portrelay::relay
