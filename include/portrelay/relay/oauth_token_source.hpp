#pragma once
// Where an endpoint's OAuth 2.0 access token comes from (XOAUTH2 / OAUTHBEARER): the first
// line of `oauth_token_file`, or of the standard output of `oauth_token_command`. Tokens
// are short-lived (about an hour at Google and Microsoft) and renewed by something else (a
// refresh helper, a sidecar), so a token is used for at most `oauth_token_lifetime` and read
// again sooner when the upstream refuses it. Shared by the connections of one endpoint.
//
// Reading happens on the calling thread: a file read is quick, a command is bounded by
// `command_timeout` (it blocks the caller that long at worst).
#include <chrono>
#include <mutex>
#include <optional>
#include <string>

#include "portrelay/config/config.hpp"

namespace portrelay::relay {

class OAuthTokenSource {
 public:
  using Clock = std::chrono::steady_clock;

  struct Token {
    std::string value;    // never logged
    std::string problem;  // why no token could be had; empty on success. Never the token.
  };

  explicit OAuthTokenSource(const config::Credentials& credentials,
                            std::chrono::milliseconds command_timeout = std::chrono::seconds(10));

  // The cached token while younger than the lifetime, else a freshly read one.
  Token current();
  // The upstream refused the cached token: the next current() reads the source again.
  void invalidate();

 private:
  Token read_source() const;

  std::string file_;
  std::string command_;
  config::Duration lifetime_;
  std::chrono::milliseconds command_timeout_;
  std::mutex mutex_;
  std::optional<std::string> cached_;
  Clock::time_point read_at_{};
};

// Runs `command` (split on spaces, no shell, PATH lookup for a bare program name) with
// stdin from /dev/null and returns the first line of its standard output. Fails when it
// cannot start, outlives `timeout` (then it is killed), exits non-zero or prints nothing.
OAuthTokenSource::Token run_token_command(const std::string& command,
                                          std::chrono::milliseconds timeout);

}  // namespace portrelay::relay
