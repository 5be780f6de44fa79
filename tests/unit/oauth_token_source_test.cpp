// OAuthTokenSource and run_token_command against real files and real processes.
#include "portrelay/relay/oauth_token_source.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "support/temp_dir.hpp"

namespace portrelay::relay {
namespace {

using namespace std::chrono_literals;
using portrelay::test::TempDir;

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
};

TEST_F(TokenFile, CachedForTheLifetimeThenReadAgain) {
  write("first\r\nignored\n");
  OAuthTokenSource source(credentials(200ms));
  EXPECT_EQ(source.current().value, "first");
  write("second\n");
  EXPECT_EQ(source.current().value, "first");  // still fresh
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(source.current().value, "second");
}

TEST_F(TokenFile, InvalidateForcesARead) {
  write("first\n");
  OAuthTokenSource source(credentials(1h));
  EXPECT_EQ(source.current().value, "first");
  write("second\n");
  EXPECT_EQ(source.current().value, "first");
  source.invalidate();
  EXPECT_EQ(source.current().value, "second");
}

TEST_F(TokenFile, UnreadableOrEmptyIsAProblemNamingTheFileNotAToken) {
  write("\n");
  OAuthTokenSource source(credentials(1h));
  EXPECT_EQ(source.current().problem, "oauth_token_file " + path_ + " has an empty first line");
  std::remove(path_.c_str());
  EXPECT_EQ(source.current().problem, "cannot read oauth_token_file " + path_);
}

}  // namespace
}  // namespace portrelay::relay
