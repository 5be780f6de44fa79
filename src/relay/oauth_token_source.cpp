#include "portrelay/relay/oauth_token_source.hpp"

#include <fstream>

namespace portrelay::relay {

using Token = OAuthTokenSource::Token;

OAuthTokenSource::Request::~Request() {
  if (source_) source_->withdraw(id_);
}

OAuthTokenSource::OAuthTokenSource(const config::Credentials& credentials,
                                   std::chrono::milliseconds command_timeout)
    : file_(credentials.oauth_token_file),
      command_(credentials.oauth_token_command),
      lifetime_(credentials.oauth_token_lifetime),
      command_timeout_(command_timeout) {}

OAuthTokenSource::~OAuthTokenSource() {
  for (auto* waiters : {&waiters_, &delivering_})
    for (auto& [id, waiter] : *waiters)
      if (waiter.request) waiter.request->source_ = nullptr;
  // run_ (if any) is destroyed with this object: its process group is killed.
}

Token OAuthTokenSource::read_file() const {
  std::ifstream file(file_);
  std::string line;
  if (!file || !std::getline(file, line)) return Token{"", "cannot read oauth_token_file " + file_};
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) return Token{"", "oauth_token_file " + file_ + " has an empty first line"};
  return Token{std::move(line), ""};
}

void OAuthTokenSource::remember(const Token& token, Clock::time_point read_at) {
  if (token.problem.empty()) {
    cached_ = token.value;
    read_at_ = read_at;
  } else {
    cached_.reset();  // never keep using an expired token because its source broke
  }
}

std::unique_ptr<OAuthTokenSource::Request> OAuthTokenSource::fetch(net::Loop& loop, Callback done) {
  const auto now = Clock::now();
  if (cached_ && now - read_at_ < lifetime_) {
    done(Token{*cached_, ""});
    return nullptr;
  }
  if (command_.empty()) {
    Token token = read_file();
    remember(token, now);
    done(std::move(token));
    return nullptr;
  }
  if (!run_) {
    auto run = std::make_unique<TokenCommand>(loop, command_, command_timeout_);
    if (auto failed = run->start([this](Token token) { on_run_finished(std::move(token)); })) {
      remember(*failed, now);
      done(std::move(*failed));
      return nullptr;
    }
    run_ = std::move(run);
    run_loop_ = &loop;
    run_started_ = now;
  }
  const std::uint64_t id = next_id_++;
  auto request = std::unique_ptr<Request>(new Request(this, id));
  waiters_.emplace(id, Waiter{std::move(done), request.get()});
  return request;
}

void OAuthTokenSource::on_run_finished(Token token) {
  // Called from inside the run: it is freed on a later loop turn.
  run_loop_->defer_delete(std::move(run_));
  remember(token, run_started_);
  // Each waiter is taken out before its callback runs; a callback may withdraw others
  // (their Request destroyed) or fetch again (a new run, new waiters_).
  delivering_ = std::move(waiters_);
  waiters_.clear();
  while (!delivering_.empty()) {
    auto first = delivering_.begin();
    Waiter waiter = std::move(first->second);
    delivering_.erase(first);
    if (waiter.request) waiter.request->source_ = nullptr;
    waiter.done(token);
  }
}

void OAuthTokenSource::withdraw(std::uint64_t id) {
  delivering_.erase(id);
  if (waiters_.erase(id) == 0 || !waiters_.empty() || !run_) return;
  // Nobody waits for this run any more: kill it now, free it on a later turn (this may be
  // called from a callback that the run's own callbacks reached).
  run_->stop();
  run_loop_->defer_delete(std::move(run_));
}

void OAuthTokenSource::invalidate() { cached_.reset(); }

}  // namespace portrelay::relay
