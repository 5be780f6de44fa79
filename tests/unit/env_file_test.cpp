// The env_file secrets file: its KEY=VALUE parser, and how the configuration uses it
// (password_env reads it before the process environment; permissions; errors with
// file:line:col).
#include "portrelay/config/env_file.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "portrelay/config/config.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::config {
namespace {

std::string error_of(const std::string& text) {
  try {
    parse_env_file(text, "/etc/portrelay/env");
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(EnvFile, ReadsTheSystemdSubset) {
  const EnvFileValues values = parse_env_file(
      "# comment\n"
      "  ; also a comment\n"
      "\n"
      "PLAIN=abc def  \n"
      "  SPACED =  value\n"
      "DOUBLE=\"a \\\"b\\\" \\\\ \\$HOME \\` x\\ny\"\n"
      "EMPTY=\r\n"
      "EQUALS=a=b=c\n"
      "HASH=pass#word\n"
      "TWICE=first\n"
      "TWICE=second\n",
      "env");
  EXPECT_EQ(values.at("PLAIN"), "abc def");
  EXPECT_EQ(values.at("SPACED"), "value");
  EXPECT_EQ(values.at("DOUBLE"), "a \"b\" \\ $HOME ` x\ny");
  EXPECT_EQ(values.at("EMPTY"), "");
  EXPECT_EQ(values.at("EQUALS"), "a=b=c");
  EXPECT_EQ(values.at("HASH"), "pass#word");  // '#' starts a comment only at line start
  EXPECT_EQ(values.at("TWICE"), "second");
  EXPECT_EQ(values.size(), 7u);
}

TEST(EnvFile, SingleQuotesAreLiteral) {
  const EnvFileValues values = parse_env_file("KEY='a \\n \"b\" $c'\n", "env");
  EXPECT_EQ(values.at("KEY"), "a \\n \"b\" $c");
}

TEST(EnvFile, ErrorsHaveLineAndColumn) {
  EXPECT_EQ(error_of("A=1\nnot a pair\n"), "/etc/portrelay/env:2:5: expected '=' after not");
  EXPECT_EQ(error_of("A=1\n\n=value\n"),
            "/etc/portrelay/env:3:1: expected KEY=VALUE with a variable name as KEY");
  EXPECT_EQ(error_of("export KEY=1\n"),
            "/etc/portrelay/env:1:8: \"export\" is not accepted (systemd's EnvironmentFile "
            "syntax): write KEY=VALUE");
  EXPECT_EQ(error_of("KEY=\"open\n"),
            "/etc/portrelay/env:1:5: quote \" is not closed on this line");
  EXPECT_EQ(error_of("KEY='a'b\n"),
            "/etc/portrelay/env:1:8: unexpected text after the closing quote");
  EXPECT_EQ(error_of("KEY=\"a\\tb\"\n"),
            "/etc/portrelay/env:1:7: unknown escape \\t (accepted: \\\" \\\\ \\$ \\` \\n)");
  EXPECT_EQ(error_of("KEY=abc\\\n"),
            "/etc/portrelay/env:1:8: a backslash at the end of a line (continuation) is not "
            "accepted");
  EXPECT_EQ(error_of("1KEY=x\n"),
            "/etc/portrelay/env:1:1: expected KEY=VALUE with a variable name as KEY");
}

// A config whose upstream reads its password through password_env.
std::string config_text(const std::string& env_file) {
  return "env_file = \"" + env_file +
         "\"\n[[upstream]]\nhost = \"smtp.example.com\"\nport = 587\nusername = \"u\"\n"
         "password_env = \"PORTRELAY_TEST_ENV_FILE_SECRET\"\n";
}

bool has_warning(const Config& config, const std::string& part) {
  for (const auto& warning : config.warnings)
    if (warning.find(part) != std::string::npos) return true;
  return false;
}

TEST(EnvFileConfig, PasswordEnvReadsTheFileBeforeTheEnvironment) {
  test::TempDir dir("portrelay-env-file");
  const std::string env = dir.write_file("env", "PORTRELAY_TEST_ENV_FILE_SECRET=from-file\n");
  ::chmod(env.c_str(), 0640);
  ::setenv("PORTRELAY_TEST_ENV_FILE_SECRET", "from-environment", 1);
  const Config config = parse_config(config_text(env), "portrelay.toml");
  ::unsetenv("PORTRELAY_TEST_ENV_FILE_SECRET");
  EXPECT_EQ(config.env_file, env);
  ASSERT_EQ(config.chain.size(), 1u);
  EXPECT_EQ(config.chain[0].credentials.password_from_env_file, "from-file");
  EXPECT_FALSE(has_warning(config, "is not set"));
  EXPECT_FALSE(has_warning(config, "readable"));
  // describe_chain (what `check` prints) never shows the value.
  EXPECT_EQ(describe_chain(config).find("from-file"), std::string::npos);
  EXPECT_NE(describe_chain(config).find("(password from env_file PORTRELAY_TEST_ENV_FILE_SECRET)"),
            std::string::npos)
      << describe_chain(config);
}

TEST(EnvFileConfig, AVariableMissingFromTheFileFallsBackToTheEnvironment) {
  test::TempDir dir("portrelay-env-file");
  const std::string env = dir.write_file("env", "OTHER=x\n");
  ::chmod(env.c_str(), 0600);
  const Config config = parse_config(config_text(env), "portrelay.toml");
  EXPECT_EQ(config.chain[0].credentials.password_from_env_file, "");
  EXPECT_TRUE(has_warning(config, "PORTRELAY_TEST_ENV_FILE_SECRET is not set (nor in env_file)"));
}

TEST(EnvFileConfig, WorldReadableIsWarnedAbout) {
  test::TempDir dir("portrelay-env-file");
  const std::string env = dir.write_file("env", "PORTRELAY_TEST_ENV_FILE_SECRET=s\n");
  ::chmod(env.c_str(), 0644);
  const Config config = parse_config(config_text(env), "portrelay.toml");
  EXPECT_TRUE(
      has_warning(config, "portrelay.toml:1: env_file \"" + env + "\" is readable by every user"));
}

TEST(EnvFileConfig, AMissingFileIsAWarningAndABadLineAnError) {
  test::TempDir dir("portrelay-env-file");
  const Config config = parse_config(config_text(dir.file("absent")), "portrelay.toml");
  EXPECT_TRUE(has_warning(config, "does not exist"));

  const std::string env = dir.write_file("env", "# secrets\nPORTRELAY_TEST_ENV_FILE_SECRET\n");
  ::chmod(env.c_str(), 0600);
  try {
    parse_config(config_text(env), "portrelay.toml");
    FAIL() << "a bad env_file line was accepted";
  } catch (const ConfigError& error) {
    EXPECT_EQ(std::string(error.what()),
              env + ":2:31: expected '=' after PORTRELAY_TEST_ENV_FILE_SECRET");
  }
  try {
    parse_config(
        "env_file = \"relative/env\"\n" + config_text(env).substr(config_text(env).find('[')),
        "portrelay.toml");
    FAIL() << "a relative env_file was accepted";
  } catch (const ConfigError& error) {
    EXPECT_EQ(std::string(error.what()),
              "portrelay.toml:1:12: env_file: expected an absolute path (a string)");
  }
}

TEST(EnvFileConfig, InlinePasswordInAGroupReadableFileIsWarnedAbout) {
  test::TempDir dir("portrelay-env-file");
  const std::string text =
      "[[upstream]]\nhost = \"smtp.example.com\"\nport = 587\nusername = \"u\"\n"
      "password = \"inline-secret\"\n";
  const std::string path = dir.write_file("portrelay.toml", text);
  ::chmod(path.c_str(), 0640);
  Config config = load_config_file(path);
  EXPECT_TRUE(has_warning(config, path + ": holds an inline password and is readable by its "
                                         "group (mode 0640)"));
  ::chmod(path.c_str(), 0604);
  config = load_config_file(path);
  EXPECT_TRUE(has_warning(config, "readable by every user (mode 0604)"));
  ::chmod(path.c_str(), 0600);
  config = load_config_file(path);
  EXPECT_FALSE(has_warning(config, "holds an inline password"));
  EXPECT_TRUE(has_warning(config, "inline password in config file"));  // the older note stays
}

}  // namespace
}  // namespace portrelay::config
