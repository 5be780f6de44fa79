#include "portrelay/config/config.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

namespace {

using namespace std::chrono_literals;
using portrelay::config::Config;
using portrelay::config::ConfigError;
using portrelay::config::describe_chain;
using portrelay::config::load_config_file;
using portrelay::config::parse_config;
using portrelay::config::RelayMode;
using portrelay::config::TlsMode;

constexpr const char* kSource = "portrelay.toml";
// The smallest valid file; appended to snippets that test other sections.
constexpr const char* kUpstream = "[[upstream]]\nhost = \"smtp.example.com\"\nport = 587\n";

Config parse(const std::string& text) { return parse_config(text, kSource); }

// The full "file:line:col: message" of the error `text` produces.
std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "(no error)";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Files that keys like tls_cert and password_file point at, in a private temporary directory.
class ConfigWithFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/portrelay-config-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    cert_ = write("cert.pem", "-----BEGIN CERTIFICATE-----\n", 0600);
    key_ = write("key.pem", "-----BEGIN PRIVATE KEY-----\n", 0600);
    users_ = write("users", "alice:$6$hash\n", 0600);
    password_file_ = write("password", "not-printed-secret\n", 0600);
    shared_password_file_ = write("password-shared", "not-printed-secret\n", 0644);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& content, mode_t mode) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << content;
    chmod(path.c_str(), mode);
    return path;
  }
  // `key = 'path'` (TOML literal string: no escaping needed).
  static std::string assign(const std::string& key, const std::string& path) {
    return key + " = '" + path + "'\n";
  }
  std::string tls_files() const { return assign("tls_cert", cert_) + assign("tls_key", key_); }

  std::string dir_, cert_, key_, users_, password_file_, shared_password_file_;
};

// ---------------------------------------------------------------------------------------------
// Defaults and expansion

TEST(ConfigDefaults, MinimalFileGetsDocumentedDefaults) {
  const Config config = parse(kUpstream);
  EXPECT_EQ(config.source, "portrelay.toml");

  ASSERT_EQ(config.server.listen.size(), 1u);
  EXPECT_EQ(config.server.listen[0].str(), "127.0.0.1:2525");
  EXPECT_TRUE(config.server.listen_implicit_tls.empty());
  EXPECT_FALSE(config.server.hostname.empty());
  EXPECT_EQ(config.server.max_message_size, 25u * 1024 * 1024);
  EXPECT_EQ(config.server.max_recipients, 100u);
  EXPECT_EQ(config.server.max_sessions, 1000u);
  ASSERT_EQ(config.server.allow.size(), 2u);
  EXPECT_EQ(config.server.allow[0].str(), "127.0.0.0/8");
  EXPECT_EQ(config.server.allow[1].str(), "::1/128");
  EXPECT_EQ(config.server.command_timeout, 5min);
  EXPECT_EQ(config.server.data_timeout, 3min);
  EXPECT_EQ(config.server.tls_cert, "");
  EXPECT_EQ(config.server.tls_key, "");
  EXPECT_EQ(config.server.users_file, "");
  EXPECT_FALSE(config.server.require_auth);

  EXPECT_EQ(config.relay.mode, portrelay::config::RelayMode::Passthrough);
  EXPECT_EQ(config.relay.connect_timeout, 10s);
  EXPECT_EQ(config.relay.greeting_timeout, 30s);
  EXPECT_EQ(config.relay.command_timeout, 5min);
  EXPECT_EQ(config.relay.data_timeout, 10min);
  EXPECT_EQ(config.relay.stagger, 250ms);
  EXPECT_EQ(config.relay.max_parallel, 3u);
  EXPECT_EQ(config.relay.pool_idle_timeout, 30s);
  EXPECT_EQ(config.relay.pool_max_per_endpoint, 64u);  // a ceiling: the pool follows the load
  EXPECT_EQ(config.relay.helo_name, config.server.hostname);

  EXPECT_TRUE(config.metrics.enabled);
  EXPECT_EQ(config.metrics.listen.str(), "127.0.0.1:9465");

  ASSERT_EQ(config.chain.size(), 1u);
  const auto& endpoint = config.chain[0];
  EXPECT_EQ(endpoint.index, 0u);
  EXPECT_EQ(endpoint.name, "smtp.example.com");
  EXPECT_EQ(endpoint.host, "smtp.example.com");
  EXPECT_EQ(endpoint.port, 587);
  EXPECT_EQ(endpoint.tls, TlsMode::StartTls);
  EXPECT_EQ(endpoint.ca_file, "");
  EXPECT_EQ(endpoint.tls_server_name, "");
  EXPECT_FALSE(endpoint.tls_insecure_skip_verify);
  EXPECT_FALSE(endpoint.credentials.configured());
  EXPECT_EQ(endpoint.source_line, 1);
  EXPECT_EQ(endpoint.label(), "smtp.example.com:587");
  EXPECT_TRUE(config.warnings.empty());
}

TEST(ConfigDefaults, HostnameDefaultsToTheMachineName) {
  char buffer[256] = {};
  ASSERT_EQ(gethostname(buffer, sizeof buffer - 1), 0);
  const std::string expected = std::string(buffer).find('_') == std::string::npos
                                   ? std::string(buffer)
                                   : std::string("localhost");
  EXPECT_EQ(parse(kUpstream).server.hostname, expected);
}

TEST(ConfigDefaults, HeloNameFollowsConfiguredHostname) {
  const Config config =
      parse("[server]\nhostname = \"relay.example.internal\"\n" + std::string(kUpstream));
  EXPECT_EQ(config.server.hostname, "relay.example.internal");
  EXPECT_EQ(config.relay.helo_name, "relay.example.internal");
}

TEST(ConfigChain, PortsExpandInListOrderWithTlsByPort) {
  const Config config = parse(
      "# providers\n"
      "[[upstream]]\n"
      "host = \"smtp.sendgrid.net\"\n"
      "ports = [587, 465, 2525, 25]\n"
      "\n"
      "[[upstream]]\n"
      "host = \"smtp.mailgun.org\"\n"
      "name = \"mailgun\"\n"
      "ports = [465, 587]\n");
  ASSERT_EQ(config.chain.size(), 6u);
  const std::pair<const char*, TlsMode> expected[] = {{"smtp.sendgrid.net:587", TlsMode::StartTls},
                                                      {"smtp.sendgrid.net:465", TlsMode::Implicit},
                                                      {"smtp.sendgrid.net:2525", TlsMode::StartTls},
                                                      {"smtp.sendgrid.net:25", TlsMode::StartTls},
                                                      {"mailgun:465", TlsMode::Implicit},
                                                      {"mailgun:587", TlsMode::StartTls}};
  for (std::size_t i = 0; i < config.chain.size(); ++i) {
    EXPECT_EQ(config.chain[i].index, i);
    EXPECT_EQ(config.chain[i].label(), expected[i].first);
    EXPECT_EQ(config.chain[i].tls, expected[i].second) << expected[i].first;
    EXPECT_EQ(config.chain[i].source_line, i < 4 ? 2 : 6) << expected[i].first;
  }
  EXPECT_EQ(config.chain[4].host, "smtp.mailgun.org");
}

TEST(ConfigChain, ExplicitTlsModeAppliesToEveryPort) {
  const Config config = parse(
      "[[upstream]]\nhost = \"10.0.0.5\"\nports = [465, 25]\ntls = \"opportunistic\"\n"
      "[[upstream]]\nhost = \"::1\"\nport = 2525\ntls = \"none\"\n"
      "[[upstream]]\nhost = \"mx.example.com\"\nport = 2465\ntls = \"implicit\"\n");
  ASSERT_EQ(config.chain.size(), 4u);
  EXPECT_EQ(config.chain[0].tls, TlsMode::Opportunistic);
  EXPECT_EQ(config.chain[1].tls, TlsMode::Opportunistic);
  EXPECT_EQ(config.chain[2].tls, TlsMode::None);
  EXPECT_EQ(config.chain[2].label(), "::1:2525");
  EXPECT_EQ(config.chain[3].tls, TlsMode::Implicit);
}

TEST(ConfigChain, TlsModeNames) {
  EXPECT_STREQ(to_string(TlsMode::Implicit), "implicit");
  EXPECT_STREQ(to_string(TlsMode::StartTls), "starttls");
  EXPECT_STREQ(to_string(TlsMode::Opportunistic), "opportunistic");
  EXPECT_STREQ(to_string(TlsMode::None), "none");
}

TEST(ConfigChain, SameHostUnderTwoNamesIsAllowed) {
  const Config config = parse(
      "[[upstream]]\nhost = \"a.example\"\nport = 587\nname = \"a-primary\"\n"
      "[[upstream]]\nhost = \"a.example\"\nport = 587\nname = \"a-again\"\n");
  EXPECT_EQ(config.chain.size(), 2u);
}

TEST_F(ConfigWithFiles, EveryKeySet) {
  setenv("PORTRELAY_TEST_PASSWORD", "not-printed", 1);
  const Config config = parse(
      "[server]\n"
      "listen = [\"0.0.0.0:2525\", \"[::]:2525\"]\n"
      "listen_implicit_tls = [\"127.0.0.1:4650\"]\n"
      "hostname = \"relay.example.internal\"\n"
      "max_message_size = 1048576\n"
      "max_recipients = 500\n"
      "max_sessions = 20\n"
      "allow = [\"10.0.0.0/8\", \"fd00::/8\"]\n"
      "command_timeout = \"1m\"\n"
      "data_timeout = \"90s\"\n" +
      tls_files() + assign("users_file", users_) +
      "require_auth = true\n"
      "[relay]\n"
      "mode = \"passthrough\"\n"
      "connect_timeout = \"3s\"\n"
      "greeting_timeout = \"20s\"\n"
      "command_timeout = \"2m\"\n"
      "data_timeout = \"1h\"\n"
      "stagger = \"2s\"\n"
      "max_parallel = 16\n"
      "helo_name = \"vm-1.example.internal\"\n"
      "[[upstream]]\n"
      "host = \"smtp.example.com\"\n"
      "port = 587\n"
      "tls = \"starttls\"\n"
      "name = \"primary\"\n" +
      assign("ca_file", cert_) +
      "tls_server_name = \"smtp-verify.example.com\"\n"
      "tls_insecure_skip_verify = false\n"
      "username = \"apikey\"\n"
      "password_env = \"PORTRELAY_TEST_PASSWORD\"\n"
      "[metrics]\n"
      "enabled = false\n"
      "listen = \"[::1]:9100\"\n");
  EXPECT_EQ(config.server.listen.size(), 2u);
  EXPECT_EQ(config.server.listen[1].str(), "[::]:2525");
  EXPECT_EQ(config.server.listen_implicit_tls[0].str(), "127.0.0.1:4650");
  EXPECT_EQ(config.server.max_message_size, 1048576u);
  EXPECT_EQ(config.server.max_recipients, 500u);
  EXPECT_EQ(config.server.max_sessions, 20u);
  EXPECT_EQ(config.server.allow[1].str(), "fd00::/8");
  EXPECT_EQ(config.server.command_timeout, 1min);
  EXPECT_EQ(config.server.data_timeout, 90s);
  EXPECT_EQ(config.server.tls_cert, cert_);
  EXPECT_EQ(config.server.tls_key, key_);
  EXPECT_EQ(config.server.users_file, users_);
  EXPECT_TRUE(config.server.require_auth);
  EXPECT_EQ(config.relay.connect_timeout, 3s);
  EXPECT_EQ(config.relay.greeting_timeout, 20s);
  EXPECT_EQ(config.relay.command_timeout, 2min);
  EXPECT_EQ(config.relay.data_timeout, 1h);
  EXPECT_EQ(config.relay.stagger, 2s);
  EXPECT_EQ(config.relay.max_parallel, 16u);
  EXPECT_EQ(config.relay.helo_name, "vm-1.example.internal");
  const auto& endpoint = config.chain.at(0);
  EXPECT_EQ(endpoint.label(), "primary:587");
  EXPECT_EQ(endpoint.ca_file, cert_);
  EXPECT_EQ(endpoint.tls_server_name, "smtp-verify.example.com");
  EXPECT_EQ(endpoint.credentials.username, "apikey");
  EXPECT_EQ(endpoint.credentials.password_env, "PORTRELAY_TEST_PASSWORD");
  EXPECT_EQ(endpoint.source_line, 24);
  EXPECT_FALSE(config.metrics.enabled);
  EXPECT_EQ(config.metrics.listen.str(), "[::1]:9100");
  EXPECT_TRUE(config.warnings.empty()) << config.warnings.front();
  unsetenv("PORTRELAY_TEST_PASSWORD");
}

TEST(ConfigValues, SizeAcceptsUnitsAndDurationsCompound) {
  const Config config =
      parse("[server]\nmax_message_size = \"10MB\"\ncommand_timeout = \"4m30s\"\n" +
            std::string(kUpstream));
  EXPECT_EQ(config.server.max_message_size, 10'000'000u);
  EXPECT_EQ(config.server.command_timeout, 270s);
}

TEST(ConfigValues, StaggerBoundsAreInclusive) {
  EXPECT_EQ(parse("[relay]\nstagger = \"10ms\"\n" + std::string(kUpstream)).relay.stagger, 10ms);
  EXPECT_EQ(parse("[relay]\nstagger = \"2s\"\n" + std::string(kUpstream)).relay.stagger, 2s);
}

TEST(ConfigValues, PoolCeilingIsZeroTo256) {
  auto ceiling = [](const std::string& value) {
    return parse("[relay]\npool_max_per_endpoint = " + value + "\n" + std::string(kUpstream))
        .relay.pool_max_per_endpoint;
  };
  EXPECT_EQ(ceiling("0"), 0u);
  EXPECT_EQ(ceiling("256"), 256u);
  EXPECT_NE(error_of("[relay]\npool_max_per_endpoint = 257\n" + std::string(kUpstream))
                .find("relay.pool_max_per_endpoint"),
            std::string::npos);
}

TEST(ConfigValues, InlineTablesWork) {
  const Config config =
      parse("server = { max_sessions = 7 }\nupstream = [{ host = \"a.example\", port = 25 }]\n");
  EXPECT_EQ(config.server.max_sessions, 7u);
  EXPECT_EQ(config.chain.at(0).label(), "a.example:25");
}

// ---------------------------------------------------------------------------------------------
// Errors: every message starts with file:line:col of the offending value

TEST(ConfigErrors, ErrorCarriesPositionFields) {
  try {
    parse("[relay]\nstagger = \"5\"\n" + std::string(kUpstream));
    FAIL() << "no error";
  } catch (const ConfigError& error) {
    EXPECT_EQ(error.file(), "portrelay.toml");
    EXPECT_EQ(error.line(), 2);
    EXPECT_EQ(error.column(), 11);
  }
}

TEST(ConfigErrors, TomlSyntax) {
  EXPECT_EQ(error_of("[server]\nlisten = [\"127.0.0.1:2525\"\n"),
            "portrelay.toml:2:28: Error while parsing array: encountered end-of-file");
  EXPECT_EQ(error_of("[relay]\nstagger = 250ms\n"),
            "portrelay.toml:2:14: Error while parsing decimal integer: expected digit, saw 'm'");
  EXPECT_EQ(error_of("[server]\n[server]\n"),
            "portrelay.toml:2:1: Error while parsing table header: cannot redefine existing "
            "table 'server'");
}

TEST(ConfigErrors, UnknownKeySuggestsClosestKnownKey) {
  EXPECT_EQ(error_of("[server]\nlisten = []\nlisen = [\"127.0.0.1:25\"]\n"),
            "portrelay.toml:3:1: unknown key \"lisen\" in [server]; did you mean \"listen\"?");
  EXPECT_EQ(error_of("[relay]\n  Stagger = \"1s\"\n"),
            "portrelay.toml:2:3: unknown key \"Stagger\" in [relay]; did you mean \"stagger\"?");
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a\"\nprot = 25\n"),
            "portrelay.toml:3:1: unknown key \"prot\" in [[upstream]]; did you mean \"port\"?");
  EXPECT_EQ(error_of("[metrics]\nenable = false\n"),
            "portrelay.toml:2:1: unknown key \"enable\" in [metrics]; did you mean \"enabled\"?");
}

TEST(ConfigErrors, UnknownKeyWithoutCloseMatch) {
  EXPECT_EQ(error_of("[server]\nspool_dir = \"/var/spool\"\n"),
            "portrelay.toml:2:1: unknown key \"spool_dir\" in [server]");
  // Nested tables are keys of their parent.
  EXPECT_EQ(error_of("[server.tls]\ncert = \"x\"\n"),
            "portrelay.toml:1:9: unknown key \"tls\" in [server]");
}

TEST(ConfigErrors, FirstUnknownKeyInFileOrderIsReported) {
  // toml++ keeps keys sorted; the report must still follow the file.
  EXPECT_EQ(error_of("[server]\nzzz = 1\naaa = 2\n"),
            "portrelay.toml:2:1: unknown key \"zzz\" in [server]");
}

TEST(ConfigErrors, UnknownTopLevelTable) {
  EXPECT_EQ(error_of("[sever]\nlisten = []\n"),
            "portrelay.toml:1:2: unknown table [sever]; did you mean [server]?");
  EXPECT_EQ(error_of("[[upstreams]]\nhost = \"a\"\n"),
            "portrelay.toml:1:3: unknown table [upstreams]; did you mean [upstream]?");
  EXPECT_EQ(error_of("debug = true\n" + std::string(kUpstream)),
            "portrelay.toml:1:1: unknown table [debug]");
}

TEST(ConfigErrors, WrongTypes) {
  EXPECT_EQ(error_of("[server]\nmax_recipients = \"100\"\n"),
            "portrelay.toml:2:18: server.max_recipients: expected an integer, got string");
  EXPECT_EQ(error_of("[server]\nlisten = \"127.0.0.1:2525\"\n"),
            "portrelay.toml:2:10: server.listen: expected an array of strings, got string");
  EXPECT_EQ(error_of("[server]\nlisten = [\"127.0.0.1:2525\", 2526]\n"),
            "portrelay.toml:2:29: server.listen: expected an array of strings, got an element "
            "of type integer");
  EXPECT_EQ(error_of("[server]\nrequire_auth = \"yes\"\n"),
            "portrelay.toml:2:16: server.require_auth: expected true, false or a list of listen "
            "addresses, got string");
  EXPECT_EQ(error_of("[relay]\nmax_parallel = 2.5\n"),
            "portrelay.toml:2:16: relay.max_parallel: expected an integer, got floating-point "
            "number");
  EXPECT_EQ(error_of("[relay]\nconnect_timeout = 10\n"),
            "portrelay.toml:2:19: relay.connect_timeout: expected a duration string, got "
            "integer (use units like \"250ms\", \"10s\", \"5m\")");
  EXPECT_EQ(error_of("[server]\nmax_message_size = true\n"),
            "portrelay.toml:2:20: server.max_message_size: expected an integer or a size "
            "string like \"25MiB\", got boolean");
  EXPECT_EQ(error_of("[metrics]\nlisten = 9465\n"),
            "portrelay.toml:2:10: metrics.listen: expected a string, got integer");
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a\"\nport = \"587\"\n"),
            "portrelay.toml:3:8: upstream.port: expected an integer, got string");
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a\"\nports = [587, \"465\"]\n"),
            "portrelay.toml:3:15: upstream.ports: expected a port number or { port = 2465, tls = "
            "\"implicit\" }, got string");
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a\"\nports = 587\n"),
            "portrelay.toml:3:9: upstream.ports: expected an array of ports, got integer");
}

TEST(ConfigErrors, SectionsMustBeTables) {
  EXPECT_EQ(error_of("server = 1\n" + std::string(kUpstream)),
            "portrelay.toml:1:10: server: expected a table [server], got integer");
  EXPECT_EQ(error_of("[[relay]]\n" + std::string(kUpstream)),
            "portrelay.toml:1:1: relay: expected a table [relay], got array");
  EXPECT_EQ(error_of("[upstream]\nhost = \"a\"\nport = 25\n"),
            "portrelay.toml:1:1: upstream: write [[upstream]] (an array of tables), not "
            "[upstream]");
  EXPECT_EQ(error_of("upstream = []\n"),
            "portrelay.toml:1:12: upstream: expected [[upstream]] tables, got array");
}

TEST(ConfigErrors, MissingUpstreamHasNoPosition) {
  EXPECT_EQ(error_of(""), "portrelay.toml: no [[upstream]] configured (at least one is required)");
  EXPECT_EQ(error_of("[server]\n"),
            "portrelay.toml: no [[upstream]] configured (at least one is required)");
}

TEST(ConfigErrors, Durations) {
  EXPECT_EQ(error_of("[relay]\nstagger = \"5\"\n"),
            "portrelay.toml:2:11: relay.stagger: \"5\" is not a duration (use units like "
            "\"250ms\", \"10s\", \"5m\")");
  EXPECT_EQ(error_of("[server]\ndata_timeout = \"-3m\"\n"),
            "portrelay.toml:2:16: server.data_timeout: \"-3m\" is not a duration (use units "
            "like \"250ms\", \"10s\", \"5m\")");
  EXPECT_EQ(error_of("[relay]\nconnect_timeout = \"0s\"\n"),
            "portrelay.toml:2:19: relay.connect_timeout: must be greater than 0");
  EXPECT_EQ(error_of("[relay]\nstagger = \"5ms\"\n"),
            "portrelay.toml:2:11: relay.stagger: \"5ms\" is out of range (must be between "
            "\"10ms\" and \"2s\")");
  EXPECT_EQ(error_of("[relay]\nstagger = \"2s1ms\"\n"),
            "portrelay.toml:2:11: relay.stagger: \"2s1ms\" is out of range (must be between "
            "\"10ms\" and \"2s\")");
  EXPECT_EQ(error_of("[relay]\ndata_timeout = \"99999999999999999999h\"\n"),
            "portrelay.toml:2:16: relay.data_timeout: \"99999999999999999999h\" is not a "
            "duration (use units like \"250ms\", \"10s\", \"5m\")");
}

TEST(ConfigErrors, Sizes) {
  EXPECT_EQ(error_of("[server]\nmax_message_size = \"25M\"\n"),
            "portrelay.toml:2:20: server.max_message_size: \"25M\" is not a size (use bytes or "
            "units like \"512KiB\", \"25MiB\", \"10MB\")");
  EXPECT_EQ(error_of("[server]\nmax_message_size = -1\n"),
            "portrelay.toml:2:20: server.max_message_size: -1 is negative");
  EXPECT_EQ(error_of("[server]\nmax_message_size = 0\n"),
            "portrelay.toml:2:20: server.max_message_size: must be greater than 0");
  EXPECT_EQ(error_of("[server]\nmax_message_size = \"99999999999TiB\"\n"),
            "portrelay.toml:2:20: server.max_message_size: \"99999999999TiB\" is not a size "
            "(use bytes or units like \"512KiB\", \"25MiB\", \"10MB\")");
}

TEST(ConfigErrors, IntegerRanges) {
  EXPECT_EQ(error_of("[server]\nmax_recipients = 0\n"),
            "portrelay.toml:2:18: server.max_recipients: 0 is out of range (must be at least 1)");
  EXPECT_EQ(error_of("[server]\nmax_sessions = -5\n"),
            "portrelay.toml:2:16: server.max_sessions: -5 is out of range (must be at least 1)");
  EXPECT_EQ(error_of("[relay]\nmax_parallel = 17\n"),
            "portrelay.toml:2:16: relay.max_parallel: 17 is out of range (must be between 1 "
            "and 16)");
  EXPECT_EQ(error_of("[relay]\nmax_parallel = 0\n"),
            "portrelay.toml:2:16: relay.max_parallel: 0 is out of range (must be between 1 "
            "and 16)");
}

TEST(ConfigErrors, FewRecipientsIsOnlyAWarning) {
  const Config config = parse("[server]\nmax_recipients = 10\n" + std::string(kUpstream));
  EXPECT_EQ(config.server.max_recipients, 10u);
  ASSERT_EQ(config.warnings.size(), 1u);
  EXPECT_EQ(config.warnings[0],
            "portrelay.toml:2: server.max_recipients: 10 is below the 100 recipients RFC 5321 "
            "requires a server to accept");
}

TEST(ConfigSpool, ModesAndSpoolTable) {
  auto spool = parse_config(
      "[relay]\nmode = \"spool\"\n[spool]\ndir = \"/var/tmp/q/\"\nmax_messages = 5\n"
      "max_bytes = \"1MiB\"\nretry_min = \"1s\"\nretry_max = \"1m\"\nbounces = false\n"
      "[[upstream]]\nhost = \"127.0.0.1\"\nport = 25\ntls = \"none\"\n",
      "portrelay.toml");
  EXPECT_EQ(spool.relay.mode, RelayMode::Spool);
  EXPECT_TRUE(spool.relay.uses_spool());
  EXPECT_EQ(spool.spool.dir, "/var/tmp/q");
  EXPECT_EQ(spool.spool.max_messages, 5u);
  EXPECT_EQ(spool.spool.max_bytes, 1u << 20);
  EXPECT_FALSE(spool.spool.bounces);
  auto fallback = parse_config(
      "[relay]\nspool_on_failure = true\n[[upstream]]\nhost = \"127.0.0.1\"\nport = 25\n"
      "tls = \"none\"\n",
      "portrelay.toml");
  EXPECT_EQ(fallback.relay.mode, RelayMode::Passthrough);
  EXPECT_TRUE(fallback.relay.uses_spool());
  EXPECT_EQ(fallback.spool.dir, "/var/spool/portrelay");
  EXPECT_EQ(error_of("[spool]\ndir = \"relative\"\n"),
            "portrelay.toml:2:7: spool.dir: must be an absolute path");
  EXPECT_EQ(error_of("[spool]\nretry_min = \"10m\"\nretry_max = \"1m\"\n"),
            "portrelay.toml:3:13: spool.retry_max: must not be shorter than spool.retry_min");
}

TEST(ConfigErrors, RelayModeAndNames) {
  EXPECT_EQ(error_of("[relay]\nmode = \"fast\"\n"),
            "portrelay.toml:2:8: relay.mode: \"fast\" is not a relay mode (\"passthrough\" or "
            "\"spool\")");
  EXPECT_EQ(error_of("[server]\nhostname = \"relay example\"\n"),
            "portrelay.toml:2:12: server.hostname: \"relay example\" is not a valid hostname "
            "(letters, digits, '-' and '.')");
  // A CR/LF in a name sent on the wire would inject SMTP commands.
  EXPECT_EQ(error_of("[relay]\nhelo_name = \"a\\r\\nRSET\"\n"),
            "portrelay.toml:2:13: relay.helo_name: \"a\r\nRSET\" is not a valid hostname "
            "(letters, digits, '-' and '.')");
}

TEST(ConfigErrors, ListenAddresses) {
  EXPECT_EQ(error_of("[server]\nlisten = [\"localhost:2525\"]\n"),
            "portrelay.toml:2:11: server.listen: \"localhost:2525\" is not an IP address and "
            "port (write \"127.0.0.1:2525\" or \"[::1]:2525\")");
  EXPECT_EQ(error_of("[server]\nlisten = []\n"),
            "portrelay.toml:2:10: server.listen: no listener configured (set listen or "
            "listen_implicit_tls)");
  EXPECT_EQ(error_of("[server]\nlisten = [\"127.0.0.1:25\", \"127.0.0.1:25\"]\n"),
            "portrelay.toml:2:27: server.listen: 127.0.0.1:25 is already listed in "
            "server.listen");
  EXPECT_EQ(error_of("[metrics]\nlisten = \"127.0.0.1:2525\"\n" + std::string(kUpstream)),
            "portrelay.toml:2:10: metrics.listen: 127.0.0.1:2525 is already an SMTP listener "
            "in [server]");
  EXPECT_EQ(error_of("[metrics]\nlisten = \"*:9465\"\n"),
            "portrelay.toml:2:10: metrics.listen: \"*:9465\" is not an IP address and port "
            "(write \"127.0.0.1:9465\" or \"[::1]:9465\")");
}

TEST(ConfigErrors, AllowList) {
  EXPECT_EQ(error_of("[server]\nallow = [\"10.0.0.0/33\"]\n"),
            "portrelay.toml:2:10: server.allow: \"10.0.0.0/33\" is not a network in CIDR "
            "notation (like \"10.0.0.0/8\" or \"fd00::/8\")");
  const Config config = parse("[server]\nallow = [\"10.1.2.3/8\"]\n" + std::string(kUpstream));
  EXPECT_EQ(config.server.allow.at(0).str(), "10.0.0.0/8");
  ASSERT_EQ(config.warnings.size(), 1u);
  EXPECT_EQ(config.warnings[0],
            "portrelay.toml:2: server.allow: \"10.1.2.3/8\" has host bits set; it means "
            "10.0.0.0/8");
}

TEST(ConfigErrors, RefusesToRunAnOpenRelay) {
  EXPECT_EQ(error_of("[server]\nlisten = [\"127.0.0.1:2525\", \"0.0.0.0:2525\"]\n" +
                     std::string(kUpstream)),
            "portrelay.toml:2:29: server.listen: non-loopback listener 0.0.0.0:2525 needs "
            "`allow` or `require_auth = true` (refusing to run an open relay)");
  EXPECT_EQ(error_of("[server]\nlisten = [\"[::]:2525\"]\nallow = [\"10.0.0.0/8\", \"::/0\"]\n" +
                     std::string(kUpstream)),
            "portrelay.toml:3:24: server.allow: \"::/0\" admits every address and listener "
            "[::]:2525 is not loopback: that is an open relay (list your client networks or "
            "set require_auth = true)");
  // Loopback in any spelling is fine without an allow-list.
  EXPECT_EQ(
      parse("[server]\nlisten = [\"127.0.0.2:25\", \"[::1]:25\", \"[::ffff:127.0.0.1]:26\"]\n" +
            std::string(kUpstream))
          .server.listen.size(),
      3u);
  // An explicit allow-list makes a public listener acceptable.
  EXPECT_EQ(parse("[server]\nlisten = [\"0.0.0.0:2525\"]\nallow = [\"10.0.0.0/8\"]\n" +
                  std::string(kUpstream))
                .server.allow.size(),
            1u);
}

TEST(ConfigErrors, RefusesAllowListsThatAdmitAWholeFamilyTogether) {
  const std::string listen = "[server]\nlisten = [\"0.0.0.0:2525\"]\n";
  // Matches every IPv4 client through the mapped form.
  EXPECT_EQ(error_of(listen + "allow = [\"10.0.0.0/8\", \"::ffff:0.0.0.0/96\"]\n" + kUpstream),
            "portrelay.toml:3:24: server.allow: \"::ffff:0.0.0.0/96\" admits every IPv4 address "
            "and listener 0.0.0.0:2525 is not loopback: that is an open relay (list your client "
            "networks or set require_auth = true)");
  EXPECT_EQ(error_of(listen + "allow = [\"0.0.0.0/0\"]\n" + kUpstream),
            "portrelay.toml:3:10: server.allow: \"0.0.0.0/0\" admits every IPv4 address and "
            "listener 0.0.0.0:2525 is not loopback: that is an open relay (list your client "
            "networks or set require_auth = true)");
  // Only the union admits everyone: the error points at the list.
  EXPECT_EQ(error_of(listen + "allow = [\"0.0.0.0/1\", \"128.0.0.0/1\"]\n" + kUpstream),
            "portrelay.toml:3:9: server.allow: these networks together admit every IPv4 address "
            "and listener 0.0.0.0:2525 is not loopback: that is an open relay (list your client "
            "networks or set require_auth = true)");
  // Any IPv6 network that contains ::ffff:0:0/96 admits every IPv4 client.
  EXPECT_EQ(error_of("[server]\nlisten = [\"[::]:2525\"]\nallow = [\"fd00::/8\", \"::/1\"]\n" +
                     std::string(kUpstream)),
            "portrelay.toml:3:22: server.allow: \"::/1\" admits every IPv4 address and listener "
            "[::]:2525 is not loopback: that is an open relay (list your client networks or set "
            "require_auth = true)");
  // Large but not everything is accepted; so is everything on a loopback-only relay.
  EXPECT_EQ(
      parse(listen + "allow = [\"0.0.0.0/1\", \"128.0.0.0/2\"]\n" + kUpstream).server.allow.size(),
      2u);
  EXPECT_EQ(parse("[server]\nlisten = [\"127.0.0.1:2525\"]\nallow = [\"::ffff:0:0/96\"]\n" +
                  std::string(kUpstream))
                .server.allow.size(),
            1u);
}

TEST_F(ConfigWithFiles, PublicListenerWithRequiredAuthNeedsNoAllowList) {
  const Config config = parse("[server]\nlisten = [\"0.0.0.0:587\"]\nrequire_auth = true\n" +
                              tls_files() + assign("users_file", users_) + kUpstream);
  EXPECT_TRUE(config.server.require_auth);
}

TEST_F(ConfigWithFiles, ServerTlsAndAuthFiles) {
  EXPECT_EQ(error_of("[server]\n" + assign("tls_cert", cert_)),
            "portrelay.toml:2:12: server.tls_cert: set together with server.tls_key (both or "
            "neither)");
  EXPECT_EQ(error_of("[server]\n" + assign("tls_key", key_)),
            "portrelay.toml:2:11: server.tls_key: set together with server.tls_cert (both or "
            "neither)");
  EXPECT_EQ(error_of("[server]\n" + assign("tls_cert", dir_ + "/missing.pem")),
            "portrelay.toml:2:12: server.tls_cert: cannot read \"" + dir_ +
                "/missing.pem\": No such file or directory");
  EXPECT_EQ(
      error_of("[server]\n" + assign("users_file", dir_)),
      "portrelay.toml:2:14: server.users_file: cannot read \"" + dir_ + "\": not a regular file");
  EXPECT_EQ(error_of("[server]\nlisten_implicit_tls = [\"127.0.0.1:4650\"]\n"),
            "portrelay.toml:2:23: server.listen_implicit_tls: needs server.tls_cert and "
            "server.tls_key");
  EXPECT_EQ(error_of("[server]\nrequire_auth = true\n" + tls_files()),
            "portrelay.toml:2:16: server.require_auth: needs server.users_file");
  EXPECT_EQ(error_of("[server]\nrequire_auth = true\n" + assign("users_file", users_)),
            "portrelay.toml:2:16: server.require_auth: needs server.tls_cert and server.tls_key "
            "(AUTH is only offered over TLS)");
}

// Root reads any file whatever its mode, so as root the check runs in a child that has
// dropped to an unprivileged user, which is what a hardened service runs as anyway.
std::string error_as_unprivileged_user(const std::function<std::string()>& check) {
  if (geteuid() != 0) return check();
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  pid_t child = ::fork();
  if (child == 0) {
    ::close(fds[0]);
    std::string result = "could not drop privileges";
    if (::setgid(65534) == 0 && ::setuid(65534) == 0) result = check();
    (void)!::write(fds[1], result.data(), result.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string result;
  char buffer[512];
  ssize_t got;
  while ((got = ::read(fds[0], buffer, sizeof buffer)) > 0)
    result.append(buffer, static_cast<std::size_t>(got));
  ::close(fds[0]);
  ::waitpid(child, nullptr, 0);
  return result;
}

TEST_F(ConfigWithFiles, UnreadableFileIsAnError) {
  const std::string locked = write("locked.pem", "x", 0000);
  const std::string toml = "[server]\n" + assign("tls_cert", locked) + assign("tls_key", key_);
  EXPECT_EQ(
      error_as_unprivileged_user([&] { return error_of(toml); }),
      "portrelay.toml:2:12: server.tls_cert: cannot read \"" + locked + "\": Permission denied");
}

TEST_F(ConfigWithFiles, DirectoryInsteadOfFileIsAnError) {
  const std::string directory = ::testing::TempDir();
  EXPECT_EQ(error_of("[server]\n" + assign("tls_cert", directory) + assign("tls_key", key_)),
            "portrelay.toml:2:12: server.tls_cert: cannot read \"" + directory +
                "\": not a regular file");
}

TEST(ConfigErrors, UpstreamHostAndPorts) {
  EXPECT_EQ(error_of("[server]\n\n[[upstream]]\nport = 587\n"),
            "portrelay.toml:3:1: upstream.host: missing (every [[upstream]] needs a host or a "
            "provider such as provider = \"sendgrid\")");
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a.example\"\n"),
            "portrelay.toml:1:1: upstream.port: missing (set port = 587 or ports = [587, 465, "
            "2525])");
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"smtp example\"\nport = 25\n"),
            "portrelay.toml:2:8: upstream.host: \"smtp example\" is not a valid host name or IP "
            "address");
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a\"\nport = 587\nports = [465]\n"),
            "portrelay.toml:4:9: upstream.ports: set either port or ports, not both");
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a\"\nport = 0\n"),
            "portrelay.toml:3:8: upstream.port: 0 is not a port (must be between 1 and 65535)");
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a\"\nports = [25, 65536]\n"),
            "portrelay.toml:3:14: upstream.ports: 65536 is not a port (must be between 1 and "
            "65535)");
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a\"\nports = [587, 465, 587]\n"),
            "portrelay.toml:3:20: upstream.ports: port 587 is listed twice");
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a\"\nports = []\n"),
            "portrelay.toml:3:9: upstream.ports: lists no port");
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a\"\nport = 25\ntls = \"STARTTLS\"\n"),
            "portrelay.toml:4:7: upstream.tls: \"STARTTLS\" is not a TLS mode (use "
            "\"implicit\", \"starttls\", \"opportunistic\" or \"none\")");
}

TEST(ConfigErrors, UpstreamNamesAreSafeMetricLabels) {
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a\"\nport = 25\nname = \"send grid\"\n"),
            "portrelay.toml:4:8: upstream.name: \"send grid\" is not usable as a metrics label "
            "(up to 64 of A-Z a-z 0-9 _ . : -); set upstream.name");
  const std::string name65(65, 'n');
  EXPECT_TRUE(
      contains(error_of("[[upstream]]\nhost = \"a\"\nport = 25\nname = \"" + name65 + "\"\n"),
               "portrelay.toml:4:8: upstream.name: \"" + name65 + "\" is not usable"));
  EXPECT_EQ(
      parse("[[upstream]]\nhost = \"a\"\nport = 25\nname = \"" + std::string(64, 'n') + "\"\n")
          .chain.at(0)
          .name.size(),
      64u);
  // A host too long to be a label needs an explicit name; the error points at the host.
  const std::string long_host = std::string(40, 'h') + "." + std::string(40, 'h');
  EXPECT_TRUE(contains(
      error_of("[[upstream]]\nhost = \"" + long_host + "\"\nport = 25\n"),
      "portrelay.toml:2:8: upstream.host: \"" + long_host + "\" is not usable as a metrics label"));
}

TEST(ConfigErrors, DuplicateEndpointLabels) {
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a.example\"\nports = [587, 25]\n\n"
                     "[[upstream]]\nhost = \"b.example\"\nname = \"a.example\"\nport = 25\n"),
            "portrelay.toml:5:1: upstream: endpoint a.example:25 is already defined by the "
            "[[upstream]] at line 1; give one of them a different name");
}

TEST_F(ConfigWithFiles, UpstreamTlsOptions) {
  EXPECT_EQ(
      error_of("[[upstream]]\nhost = \"a\"\nport = 25\n" + assign("ca_file", dir_ + "/nope.pem")),
      "portrelay.toml:4:11: upstream.ca_file: cannot read \"" + dir_ +
          "/nope.pem\": No such file or directory");
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a\"\nport = 25\ntls_server_name = \"a b\"\n"),
            "portrelay.toml:4:19: upstream.tls_server_name: \"a b\" is not a valid hostname");
  const Config config =
      parse("[[upstream]]\nhost = \"10.0.0.9\"\nport = 465\ntls_insecure_skip_verify = true\n");
  EXPECT_TRUE(config.chain.at(0).tls_insecure_skip_verify);
  ASSERT_EQ(config.warnings.size(), 1u);
  EXPECT_EQ(config.warnings[0],
            "portrelay.toml:4: upstream.tls_insecure_skip_verify: certificates of 10.0.0.9 are "
            "not verified; anyone on the path can read the mail and credentials");
}

// ---------------------------------------------------------------------------------------------
// Credentials

TEST(ConfigCredentials, PasswordSourceRules) {
  const std::string head = "[[upstream]]\nhost = \"a\"\nport = 587\n";
  EXPECT_EQ(error_of(head + "username = \"u\"\npassword_env = \"X\"\npassword_file = \"/f\"\n"),
            "portrelay.toml:6:17: upstream.password_file: set only one of password_env, "
            "password_file and password");
  EXPECT_EQ(error_of(head + "password_env = \"SMTP_PASSWORD\"\n"),
            "portrelay.toml:4:16: upstream.password_env: is set but upstream.username is not");
  EXPECT_EQ(error_of(head + "password = \"hunter2\"\n"),
            "portrelay.toml:4:12: upstream.password: is set but upstream.username is not");
  EXPECT_EQ(error_of(head + "username = \"apikey\"\n"),
            "portrelay.toml:4:12: upstream.username: has no password (set password_env, "
            "password_file or password)");
  EXPECT_EQ(error_of(head + "username = \"\"\npassword_env = \"X\"\n"),
            "portrelay.toml:4:12: upstream.username: is empty");
  EXPECT_EQ(error_of(head + "username = \"u\"\npassword = \"\"\n"),
            "portrelay.toml:5:12: upstream.password: is empty");
  EXPECT_EQ(error_of(head + "username = \"u\"\npassword_env = \"1BAD-NAME\"\n"),
            "portrelay.toml:5:16: upstream.password_env: \"1BAD-NAME\" is not an environment "
            "variable name");
}

TEST(ConfigCredentials, NeverInClearText) {
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a\"\nport = 25\ntls = \"none\"\n"
                     "username = \"u\"\npassword_env = \"X\"\n"),
            "portrelay.toml:4:7: upstream.tls: \"none\" with username set: credentials would "
            "travel in clear text (use \"starttls\" or \"implicit\")");
}

TEST(ConfigCredentials, UnsetEnvironmentVariableIsOnlyAWarning) {
  unsetenv("PORTRELAY_TEST_UNSET_PASSWORD");
  const Config config = parse(
      "[[upstream]]\nhost = \"a\"\nport = 587\nusername = \"u\"\n"
      "password_env = \"PORTRELAY_TEST_UNSET_PASSWORD\"\n");
  EXPECT_EQ(config.chain.at(0).credentials.password_env, "PORTRELAY_TEST_UNSET_PASSWORD");
  ASSERT_EQ(config.warnings.size(), 1u);
  EXPECT_EQ(config.warnings[0],
            "portrelay.toml:5: upstream.password_env: environment variable "
            "PORTRELAY_TEST_UNSET_PASSWORD is not set");
}

TEST(ConfigCredentials, InlinePasswordWorksWithAWarning) {
  const Config config = parse(
      "[[upstream]]\nhost = \"a\"\nports = [587, 465]\nusername = \"u\"\n"
      "password = \"s3cr3t-inline\"\n");
  EXPECT_EQ(config.chain.at(1).credentials.password, "s3cr3t-inline");
  ASSERT_EQ(config.warnings.size(), 1u) << "one warning per [[upstream]], not per port";
  EXPECT_EQ(config.warnings[0],
            "portrelay.toml:5: upstream.password: inline password in config file; prefer "
            "password_env or password_file");
}

TEST_F(ConfigWithFiles, PasswordFile) {
  const std::string head = "[[upstream]]\nhost = \"a\"\nport = 587\nusername = \"u\"\n";
  const Config private_file = parse(head + assign("password_file", password_file_));
  EXPECT_EQ(private_file.chain.at(0).credentials.password_file, password_file_);
  EXPECT_TRUE(private_file.warnings.empty());

  const Config shared_file = parse(head + assign("password_file", shared_password_file_));
  ASSERT_EQ(shared_file.warnings.size(), 1u);
  EXPECT_EQ(shared_file.warnings[0], "portrelay.toml:5: upstream.password_file: \"" +
                                         shared_password_file_ +
                                         "\" is readable by group or others; restrict it "
                                         "(chmod 600)");

  EXPECT_EQ(error_of(head + assign("password_file", dir_ + "/absent")),
            "portrelay.toml:5:17: upstream.password_file: cannot read \"" + dir_ +
                "/absent\": No such file or directory");
}

TEST_F(ConfigWithFiles, SharedTlsKeyAndUsersFileAreWarned) {
  const std::string shared_key = write("shared-key.pem", "-----BEGIN PRIVATE KEY-----\n", 0640);
  const std::string shared_users = write("shared-users", "alice:$6$hash\n", 0604);
  const Config config =
      parse("[server]\n" + assign("tls_cert", cert_) + assign("tls_key", shared_key) +
            assign("users_file", shared_users) + kUpstream);
  ASSERT_EQ(config.warnings.size(), 2u);
  EXPECT_EQ(config.warnings[0], "portrelay.toml:3: server.tls_key: \"" + shared_key +
                                    "\" (the TLS private key) is readable by group or others; "
                                    "restrict it (chmod 600)");
  EXPECT_EQ(config.warnings[1], "portrelay.toml:4: server.users_file: \"" + shared_users +
                                    "\" (password hashes) is readable by group or others; "
                                    "restrict it (chmod 600)");
  // The certificate is public; private files give no warning.
  const std::string shared_cert = write("shared-cert.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
  EXPECT_TRUE(parse("[server]\n" + assign("tls_cert", shared_cert) + assign("tls_key", key_) +
                    assign("users_file", users_) + kUpstream)
                  .warnings.empty());
}

TEST(ConfigErrors, CooldownLongerThanTheDefaultMaximum) {
  // Found by config_fuzz: with cooldown_max absent, the error pointed at a missing node.
  EXPECT_EQ(error_of("[relay]\ncooldown = \"20m\"\n" + std::string(kUpstream)),
            "portrelay.toml:2:12: relay.cooldown: is longer than relay.cooldown_max (600s by "
            "default); set cooldown_max too");
  EXPECT_EQ(
      error_of("[relay]\ncooldown = \"20m\"\ncooldown_max = \"5m\"\n" + std::string(kUpstream)),
      "portrelay.toml:3:16: relay.cooldown_max: must not be shorter than relay.cooldown");
}

TEST(ConfigWarnings, PlaintextTowardANonLoopbackUpstream) {
  const Config none =
      parse("[[upstream]]\nhost = \"smtp.example.com\"\nport = 25\ntls = \"none\"\n");
  ASSERT_EQ(none.warnings.size(), 1u);
  EXPECT_EQ(none.warnings[0],
            "portrelay.toml:4: upstream.tls: \"none\" toward smtp.example.com, which is not a "
            "loopback address: every message crosses the network in clear text (use "
            "\"starttls\" or \"implicit\")");
  const Config opportunistic =
      parse("[[upstream]]\nhost = \"192.0.2.7\"\nports = [25, 2525]\ntls = \"opportunistic\"\n");
  ASSERT_EQ(opportunistic.warnings.size(), 1u) << "one warning per [[upstream]], not per port";
  EXPECT_EQ(opportunistic.warnings[0],
            "portrelay.toml:4: upstream.tls: \"opportunistic\" toward 192.0.2.7, which is not a "
            "loopback address: anyone on the path can remove STARTTLS from the EHLO reply and "
            "read the mail (use \"starttls\" or \"implicit\")");
  // Pinned addresses decide: a public name pinned to a public address is warned too.
  EXPECT_EQ(parse("[[upstream]]\nhost = \"mx.test\"\naddresses = [\"127.0.0.1\", \"10.1.1.1\"]\n"
                  "port = 25\ntls = \"none\"\n")
                .warnings.size(),
            1u);
  // Loopback peers (a local MTA, a tunnel) are fine in clear text.
  for (const std::string host : {"127.0.0.1", "::1", "localhost", "127.1.2.3"}) {
    SCOPED_TRACE(host);
    EXPECT_TRUE(parse("[[upstream]]\nhost = \"" + host + "\"\nport = 25\ntls = \"none\"\n")
                    .warnings.empty());
  }
  EXPECT_TRUE(parse("[[upstream]]\nhost = \"mx.test\"\naddresses = [\"127.0.0.1\", \"::1\"]\n"
                    "port = 25\ntls = \"opportunistic\"\n")
                  .warnings.empty());
  EXPECT_TRUE(parse("[[upstream]]\nhost = \"smtp.example.com\"\nport = 587\n").warnings.empty());
}

TEST(ConfigCredentials, SecretsNeverAppearInErrors) {
  const std::string secret = "hunter2-do-not-print";
  const std::string head = "[[upstream]]\nhost = \"a\"\nport = 587\n";
  for (const std::string& text : {
           head + "pasword = \"" + secret + "\"\n",   // typo in the key
           head + "password = \"" + secret + "\"\n",  // no username
           head + "username = \"u\"\npassword = \"" + secret + "\"\npassword_env = \"E\"\n",
           head + "tls = \"none\"\nusername = \"u\"\npassword = \"" + secret + "\"\n",
           head + "password = \"" + secret + "\n",                        // unterminated string
           head + "password = " + secret + "\n",                          // unquoted
           head + "username = \"u\"\npassword = [\"" + secret + "\"]\n",  // wrong type
       }) {
    const std::string error = error_of(text);
    EXPECT_NE(error, "(no error)") << text;
    EXPECT_FALSE(contains(error, secret)) << error;
    EXPECT_FALSE(contains(error, "hunter2")) << error;
  }
}

// ---------------------------------------------------------------------------------------------
// describe_chain

TEST(ConfigDescribeChain, OneAlignedLinePerEndpointWithoutSecrets) {
  setenv("PORTRELAY_TEST_KEY", "env-secret-value", 1);
  const Config config = parse(
      "[[upstream]]\nhost = \"smtp.sendgrid.net\"\nports = [587, 465]\nusername = \"apikey\"\n"
      "password_env = \"PORTRELAY_TEST_KEY\"\n"
      "[[upstream]]\nhost = \"10.0.0.7\"\nport = 25\nname = \"backup\"\nusername = \"relay\"\n"
      "password = \"inline-secret-value\"\ntls_insecure_skip_verify = true\n"
      "tls_server_name = \"mx.internal\"\n"
      "[[upstream]]\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\n");
  EXPECT_EQ(describe_chain(config),
            "upstream chain (4 endpoints, in order of preference):\n"
            "1  smtp.sendgrid.net:587  tls=starttls  name=smtp.sendgrid.net  "
            "auth=apikey (password from env PORTRELAY_TEST_KEY)\n"
            "2  smtp.sendgrid.net:465  tls=implicit  name=smtp.sendgrid.net  "
            "auth=apikey (password from env PORTRELAY_TEST_KEY)\n"
            "3  10.0.0.7:25            tls=starttls  name=backup             "
            "auth=relay (inline password)  tls_server_name=mx.internal  verify=OFF\n"
            "4  127.0.0.1:2525         tls=none      name=127.0.0.1          auth=(no auth)\n");
  const std::string all_output = describe_chain(config) + [&] {
    std::string joined;
    for (const auto& warning : config.warnings) joined += warning + "\n";
    return joined;
  }();
  EXPECT_FALSE(contains(all_output, "inline-secret-value"));
  EXPECT_FALSE(contains(all_output, "env-secret-value"));
  unsetenv("PORTRELAY_TEST_KEY");
}

TEST_F(ConfigWithFiles, DescribeChainShowsPasswordFilePathAndCaFile) {
  const Config config = parse("[[upstream]]\nhost = \"a.example\"\nport = 465\nusername = \"u\"\n" +
                              assign("password_file", password_file_) + assign("ca_file", cert_));
  EXPECT_EQ(describe_chain(config),
            "upstream chain (1 endpoint, in order of preference):\n"
            "1  a.example:465  tls=implicit  name=a.example  auth=u (password file " +
                password_file_ + ")  ca_file=" + cert_ + "\n");
  EXPECT_FALSE(contains(describe_chain(config), "not-printed-secret"));
}

// ---------------------------------------------------------------------------------------------
// Files

TEST_F(ConfigWithFiles, LoadConfigFileUsesThePathInMessages) {
  const std::string path = write("relay.toml", "[relay]\nstagger = \"5\"\n", 0600);
  try {
    load_config_file(path);
    FAIL() << "no error";
  } catch (const ConfigError& error) {
    EXPECT_EQ(std::string(error.what()),
              path +
                  ":2:11: relay.stagger: \"5\" is not a duration (use units like \"250ms\", "
                  "\"10s\", \"5m\")");
  }
  const std::string good = write("good.toml", kUpstream, 0600);
  EXPECT_EQ(load_config_file(good).source, good);
}

TEST_F(ConfigWithFiles, LoadConfigFileUnreadable) {
  const std::string missing = dir_ + "/missing.toml";
  try {
    load_config_file(missing);
    FAIL() << "no error";
  } catch (const ConfigError& error) {
    EXPECT_EQ(std::string(error.what()), missing + ": cannot read: No such file or directory");
    EXPECT_EQ(error.file(), missing);
    EXPECT_EQ(error.line(), 0);
    EXPECT_EQ(error.column(), 0);
  }
  try {
    load_config_file(dir_);
    FAIL() << "no error";
  } catch (const ConfigError& error) {
    EXPECT_EQ(std::string(error.what()), dir_ + ": cannot read: Is a directory");
  }
}

TEST(ConfigExampleFile, ShippedExampleParses) {
  const std::string path = std::string(PORTRELAY_SOURCE_DIR) + "/conf/portrelay.toml";
  const Config config = load_config_file(path);
  ASSERT_EQ(config.chain.size(), 6u);
  const char* labels[] = {
      "smtp.sendgrid.net:587", "smtp.sendgrid.net:465", "smtp.sendgrid.net:2525",
      "smtp.sendgrid.net:25",  "mailgun:587",           "mailgun:2525"};
  for (std::size_t i = 0; i < config.chain.size(); ++i) {
    EXPECT_EQ(config.chain[i].label(), labels[i]);
  }
  EXPECT_EQ(config.chain[0].credentials.username, "apikey");
  EXPECT_EQ(config.chain[0].credentials.password_env, "SENDGRID_API_KEY");
  EXPECT_EQ(config.chain[1].tls, TlsMode::Implicit);
  EXPECT_EQ(config.server.listen.at(0).str(), "127.0.0.1:2525");
  EXPECT_EQ(config.env_file, "/etc/portrelay/env");
  // Only the environment can make it warn: the variables are not set in a test run, and
  // the secrets file is not there on a build machine.
  for (const auto& warning : config.warnings) {
    EXPECT_TRUE(contains(warning, "is not set") ||
                contains(warning, "env_file \"/etc/portrelay/env\" does not exist"))
        << warning;
  }
}

}  // namespace
