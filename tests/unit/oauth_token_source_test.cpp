// OAuthTokenSource and TokenCommand against real files and real processes, on a private
// libuv loop.
#include "portrelay/relay/oauth_token_source.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <thread>
#include <vector>

#include "support/temp_dir.hpp"

namespace portrelay::relay {
namespace {

using namespace std::chrono_literals;
using portrelay::test::TempDir;

// A private loop for one test; at the end every handle must be closed (loop close 0).
class PrivateLoop {
 public:
  PrivateLoop() {
    uv_loop_init(&uv_);
    loop_.emplace(&uv_);
  }
  ~PrivateLoop() {
    loop_.reset();
    uv_run(&uv_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&uv_), 0) << "a handle was left open";
  }
  net::Loop& loop() { return *loop_; }
  // Runs the loop until `done` holds or `limit` passes; false on timeout.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > until) return false;
      uv_run(&uv_, UV_RUN_ONCE);
    }
    return true;
  }
  // Runs whatever is left (deferred deletions, a killed child being reaped).
  void drain() { uv_run(&uv_, UV_RUN_DEFAULT); }

 private:
  uv_loop_t uv_;
  std::optional<net::Loop> loop_;
};

// One TokenCommand run to its end on a private loop.
OAuthToken run_token_command(const std::string& command, std::chrono::milliseconds timeout) {
  PrivateLoop loop;
  auto run = std::make_unique<TokenCommand>(loop.loop(), command, timeout);
  std::optional<OAuthToken> result;
  if (auto failed = run->start([&](OAuthToken token) { result = std::move(token); }))
    return *failed;
  EXPECT_TRUE(loop.run_until([&] { return result.has_value(); }, timeout + 5s));
  loop.loop().defer_delete(std::move(run));
  loop.drain();
  return result.value_or(OAuthToken{"", "no answer"});
}

// fetch() on a private loop, waiting for the answer when it comes from a command.
OAuthToken fetch_now(OAuthTokenSource& source, PrivateLoop& loop) {
  std::optional<OAuthToken> result;
  auto request = source.fetch(loop.loop(), [&](OAuthToken token) { result = std::move(token); });
  EXPECT_TRUE(loop.run_until([&] { return result.has_value(); }));
  return result.value_or(OAuthToken{"", "no answer"});
}

TEST(RunTokenCommand, FirstLineOfStdoutWithArgumentsAndNoShell) {
  // printf gets its arguments split on spaces; "$HOME" stays literal: no shell expands it.
  auto token = run_token_command("printf %s\\n%s\\n tok-A $HOME", 5s);
  EXPECT_EQ(token.problem, "");
  EXPECT_EQ(token.value, "tok-A");
  token = run_token_command("/usr/bin/printf %s $HOME", 5s);
  EXPECT_EQ(token.value, "$HOME");
}

TEST(RunTokenCommand, ExitStatusEmptyOutputAndMissingProgramAreProblems) {
  auto token = run_token_command("false", 5s);
  EXPECT_EQ(token.problem, "oauth_token_command false exited with status 1");
  EXPECT_EQ(token.value, "");
  token = run_token_command("true", 5s);
  EXPECT_EQ(token.problem, "oauth_token_command true printed no token");
  token = run_token_command("/nonexistent/get-token", 5s);
  EXPECT_NE(token.problem.find("cannot run oauth_token_command /nonexistent/get-token"),
            std::string::npos)
      << token.problem;
}

TEST(RunTokenCommand, AHangingCommandIsKilledAtTheDeadline) {
  const auto start = std::chrono::steady_clock::now();
  auto token = run_token_command("sleep 30", 300ms);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(token.problem, "oauth_token_command sleep did not finish within 300ms (killed)");
}

TEST(RunTokenCommand, TheDeadlineKillsWhatTheCommandStartedToo) {
  TempDir dir("portrelay-token-group");
  const std::string pid_file = dir.file("grandchild.pid");
  // A helper script whose own child hangs (and holds the output pipe open).
  const std::string script = dir.file("get-token");
  std::ofstream(script) << "#!/bin/sh\nsleep 30 &\necho $! > " << pid_file << "\nwait\n";
  ::chmod(script.c_str(), 0700);
  auto token = run_token_command(script, 500ms);
  EXPECT_NE(token.problem.find("did not finish within 500ms (killed)"), std::string::npos)
      << token.problem;
  std::ifstream in(pid_file);
  pid_t grandchild = 0;
  ASSERT_TRUE(in >> grandchild);
  // Killed with its group (a zombie until its reaper, init, collects it: signal 0 may
  // still reach it for a moment).
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::ifstream stat("/proc/" + std::to_string(grandchild) + "/stat");
    std::string pid, name, state;
    gone = !(stat >> pid >> name >> state) || state == "Z";
    if (!gone) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(gone) << "the script's sleep outlived the deadline";
}

// The loop is never blocked by the command: a timer on the same loop keeps firing, and the
// answer comes on a later turn.
TEST(OAuthTokenCommand, RunsOnTheLoopWithoutBlockingItAndConcurrentFetchesShareOneRun) {
  TempDir dir("portrelay-token-herd");
  const std::string runs = dir.file("runs");
  const std::string script = dir.file("get-token");
  std::ofstream(script) << "#!/bin/sh\necho run >> " << runs << "\nsleep 1\necho tok-1\n";
  ::chmod(script.c_str(), 0700);
  config::Credentials credentials;
  credentials.username = "u";
  credentials.auth = UpstreamAuth::XOAuth2;
  credentials.oauth_token_command = script;
  credentials.oauth_token_lifetime = 1h;
  PrivateLoop loop;
  {
    OAuthTokenSource source(credentials, 5s);
    std::vector<std::string> answers;
    std::vector<std::unique_ptr<OAuthTokenSource::Request>> requests;
    for (int i = 0; i < 3; ++i)
      requests.push_back(source.fetch(
          loop.loop(), [&](OAuthToken token) { answers.push_back(token.value + token.problem); }));
    EXPECT_TRUE(answers.empty()) << "a command's answer never comes inside fetch()";
    EXPECT_TRUE(source.running());
    int ticks = 0;
    net::Timer tick(loop.loop().uv());
    std::function<void()> again = [&] {
      ++ticks;
      tick.start(100ms, again);
    };
    tick.start(100ms, again);
    // A fetch withdrawn before the answer is not called.
    requests[1].reset();
    ASSERT_TRUE(loop.run_until([&] { return answers.size() == 2; }));
    tick.stop();
    EXPECT_EQ(answers, (std::vector<std::string>{"tok-1", "tok-1"}));
    EXPECT_GE(ticks, 5) << "the loop was blocked while the command ran";
    std::ifstream in(runs);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(all, "run\n") << "one run for three fetches";
    // Cached now: answered at once.
    std::string cached;
    EXPECT_EQ(source.fetch(loop.loop(), [&](OAuthToken token) { cached = token.value; }), nullptr);
    EXPECT_EQ(cached, "tok-1");
  }
}

TEST(OAuthTokenCommand, ARunNobodyWaitsForAnyMoreIsKilled) {
  config::Credentials credentials;
  credentials.username = "u";
  credentials.auth = UpstreamAuth::XOAuth2;
  credentials.oauth_token_command = "sleep 30";
  PrivateLoop loop;
  OAuthTokenSource source(credentials, 20s);
  const auto start = std::chrono::steady_clock::now();
  auto request = source.fetch(loop.loop(), [](OAuthToken) { ADD_FAILURE() << "withdrawn"; });
  ASSERT_NE(request, nullptr);
  EXPECT_TRUE(source.running());
  request.reset();
  EXPECT_FALSE(source.running());
  loop.drain();  // returns once the killed sleep is reaped and every handle closed
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

class TokenFile : public ::testing::Test {
 protected:
  void write(const std::string& content) {
    std::ofstream(path_, std::ios::trunc) << content;
    ::chmod(path_.c_str(), 0600);
  }
  config::Credentials credentials(config::Duration lifetime) {
    config::Credentials c;
    c.username = "u";
    c.auth = UpstreamAuth::XOAuth2;
    c.oauth_token_file = path_;
    c.oauth_token_lifetime = lifetime;
    return c;
  }
  TempDir dir_{"portrelay-token-source"};
  std::string path_ = dir_.file("token");
  PrivateLoop loop_;
};

TEST_F(TokenFile, CachedForTheLifetimeThenReadAgain) {
  write("first\r\nignored\n");
  OAuthTokenSource source(credentials(200ms));
  EXPECT_EQ(fetch_now(source, loop_).value, "first");
  write("second\n");
  EXPECT_EQ(fetch_now(source, loop_).value, "first");  // still fresh
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(fetch_now(source, loop_).value, "second");
}

TEST_F(TokenFile, InvalidateForcesARead) {
  write("first\n");
  OAuthTokenSource source(credentials(1h));
  EXPECT_EQ(fetch_now(source, loop_).value, "first");
  write("second\n");
  EXPECT_EQ(fetch_now(source, loop_).value, "first");
  source.invalidate();
  EXPECT_EQ(fetch_now(source, loop_).value, "second");
}

TEST_F(TokenFile, UnreadableOrEmptyIsAProblemNamingTheFileNotAToken) {
  write("\n");
  OAuthTokenSource source(credentials(1h));
  EXPECT_EQ(fetch_now(source, loop_).problem,
            "oauth_token_file " + path_ + " has an empty first line");
  std::remove(path_.c_str());
  EXPECT_EQ(fetch_now(source, loop_).problem, "cannot read oauth_token_file " + path_);
}

}  // namespace
}  // namespace portrelay::relay
