// [[upstream]] auth = "xoauth2" | "oauthbearer": token sources, their validation errors as
// file:line:col, and what `check` prints (where the token comes from, never the token).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "portrelay/config/config.hpp"

namespace {

using namespace std::chrono_literals;
using portrelay::UpstreamAuth;
using portrelay::config::Config;
using portrelay::config::ConfigError;
using portrelay::config::describe_chain;
using portrelay::config::parse_config;

constexpr const char* kHead = "[[upstream]]\nhost = \"smtp.office365.com\"\nport = 587\n";

std::string error_of(const std::string& text) {
  try {
    parse_config(text, "portrelay.toml");
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "(no error)";
}

class ConfigOAuth : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/portrelay-config-oauth-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    token_file_ = dir_ + "/token";
    std::ofstream(token_file_) << "not-printed-token\n";
    ::chmod(token_file_.c_str(), 0600);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_, token_file_;
};

TEST_F(ConfigOAuth, TokenFileWithDefaultLifetime) {
  const Config config = parse_config(std::string(kHead) +
                                         "username = \"relay@contoso.com\"\nauth = \"xoauth2\"\n"
                                         "oauth_token_file = '" +
                                         token_file_ + "'\n",
                                     "portrelay.toml");
  const auto& credentials = config.chain.at(0).credentials;
  EXPECT_EQ(credentials.auth, UpstreamAuth::XOAuth2);
  EXPECT_EQ(credentials.username, "relay@contoso.com");
  EXPECT_EQ(credentials.oauth_token_file, token_file_);
  EXPECT_EQ(credentials.oauth_token_lifetime, 5min);
  EXPECT_TRUE(config.warnings.empty());
  EXPECT_EQ(describe_chain(config),
            "upstream chain (1 endpoint, in order of preference):\n"
            "1  smtp.office365.com:587  tls=starttls  name=smtp.office365.com  "
            "auth=relay@contoso.com (XOAUTH2, token file " +
                token_file_ + ", re-read after 300s or when refused)\n");
  EXPECT_EQ(describe_chain(config).find("not-printed-token"), std::string::npos);
}

TEST_F(ConfigOAuth, TokenCommandWithLifetime) {
  const Config config = parse_config(std::string(kHead) +
                                         "username = \"u@gmail.com\"\nauth = \"oauthbearer\"\n"
                                         "oauth_token_command = \"/bin/echo --account u\"\n"
                                         "oauth_token_lifetime = \"90s\"\n",
                                     "portrelay.toml");
  const auto& credentials = config.chain.at(0).credentials;
  EXPECT_EQ(credentials.auth, UpstreamAuth::OAuthBearer);
  EXPECT_EQ(credentials.oauth_token_command, "/bin/echo --account u");
  EXPECT_EQ(credentials.oauth_token_lifetime, 90s);
  EXPECT_NE(describe_chain(config).find("(OAUTHBEARER, token from command /bin/echo --account u, "
                                        "re-read after 90s or when refused)"),
            std::string::npos)
      << describe_chain(config);
}

TEST_F(ConfigOAuth, ValidationErrorsPointAtTheKey) {
  const std::string user = "username = \"u\"\n";
  EXPECT_EQ(error_of(std::string(kHead) + user + "auth = \"cram-md5\"\n"),
            "portrelay.toml:5:8: upstream.auth: \"cram-md5\" is not an upstream auth mechanism "
            "(use \"xoauth2\", \"oauthbearer\" or \"password\", the default: PLAIN or LOGIN)");
  EXPECT_EQ(error_of(std::string(kHead) + "auth = \"xoauth2\"\noauth_token_file = '" + token_file_ +
                     "'\n"),
            "portrelay.toml:4:8: upstream.auth: \"xoauth2\" needs upstream.username (the mailbox "
            "the token was issued for)");
  EXPECT_EQ(error_of(std::string(kHead) + user + "auth = \"xoauth2\"\n"),
            "portrelay.toml:5:8: upstream.auth: \"xoauth2\" needs a token source (set "
            "oauth_token_file or oauth_token_command)");
  EXPECT_EQ(error_of(std::string(kHead) + user + "auth = \"oauthbearer\"\noauth_token_file = '" +
                     token_file_ + "'\noauth_token_command = \"/bin/echo\"\n"),
            "portrelay.toml:7:23: upstream.oauth_token_command: set either oauth_token_file or "
            "oauth_token_command, not both");
  EXPECT_EQ(error_of(std::string(kHead) + user +
                     "auth = \"xoauth2\"\npassword_env = \"X\"\n"
                     "oauth_token_command = \"/bin/echo\"\n"),
            "portrelay.toml:6:16: upstream.password_env: is for PLAIN/LOGIN; auth = \"xoauth2\" "
            "takes oauth_token_file or oauth_token_command");
  EXPECT_EQ(error_of(std::string(kHead) + user + "password_env = \"X\"\noauth_token_file = '" +
                     token_file_ + "'\n"),
            "portrelay.toml:6:20: upstream.oauth_token_file: is set but upstream.auth is not "
            "\"xoauth2\" or \"oauthbearer\"");
  EXPECT_EQ(error_of(std::string(kHead) + user +
                     "auth = \"xoauth2\"\noauth_token_command = \"/nonexistent/get-token -v\"\n"),
            "portrelay.toml:6:23: upstream.oauth_token_command: \"/nonexistent/get-token\" is "
            "not an executable file: No such file or directory");
  EXPECT_EQ(
      error_of(std::string(kHead) + user + "auth = \"xoauth2\"\noauth_token_command = \"  \"\n"),
      "portrelay.toml:6:23: upstream.oauth_token_command: is empty");
  EXPECT_EQ(error_of(std::string(kHead) + user + "auth = \"xoauth2\"\noauth_token_file = '" + dir_ +
                     "/missing'\n"),
            "portrelay.toml:6:20: upstream.oauth_token_file: cannot read \"" + dir_ +
                "/missing\": No such file or directory");
  EXPECT_EQ(error_of(std::string(kHead) + user + "auth = \"xoauth2\"\noauth_token_file = '" +
                     token_file_ + "'\noauth_token_lifetime = \"0s\"\n"),
            "portrelay.toml:7:24: upstream.oauth_token_lifetime: must be greater than 0");
}

TEST_F(ConfigOAuth, PasswordIsTheDefaultAndStillNeedsAPassword) {
  EXPECT_EQ(error_of(std::string(kHead) + "username = \"u\"\nauth = \"password\"\n"),
            "portrelay.toml:4:12: upstream.username: has no password (set password_env, "
            "password_file or password)");
}

TEST_F(ConfigOAuth, SharedTokenFileIsWarnedAbout) {
  ::chmod(token_file_.c_str(), 0644);
  const Config config = parse_config(std::string(kHead) +
                                         "username = \"u\"\nauth = \"xoauth2\"\n"
                                         "oauth_token_file = '" +
                                         token_file_ + "'\n",
                                     "portrelay.toml");
  ASSERT_EQ(config.warnings.size(), 1u);
  EXPECT_NE(config.warnings[0].find("is readable by group or others"), std::string::npos);
}

}  // namespace
