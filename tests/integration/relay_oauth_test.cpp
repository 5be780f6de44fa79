// XOAUTH2 / OAUTHBEARER towards the upstream with the real Daemon: the token from a file or
// a command, re-read when the upstream refuses it (a rotated token), the 334 error dance on
// the wire, a mechanism the server does not offer, and tokens that never reach the logs.
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <thread>

#include "portrelay/base/log.hpp"
#include "portrelay/demo/test_pki.hpp"
#include "relay_harness.hpp"
#include "support/base64.hpp"
#include "support/blocked_ports.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::test {
namespace {

constexpr const char* kUser = "relay@example.test";
constexpr const char* kFirstToken = "ya29.First-Token-7d1e";
constexpr const char* kRotatedToken = "ya29.Rotated-Token-44b0";

class RelayOAuth : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_dir_ = new TempDir("portrelay-integ-oauth");
    pki_ = new tls::GeneratedPki(tls::generate_test_pki(pki_dir_->path()));
  }
  static void TearDownTestSuite() {
    delete pki_;
    delete pki_dir_;
  }

  // Implicit TLS upstream that only takes mail after AUTH `mechanism` with `token`.
  static FakeUpstream::Config upstream_config(const std::string& mechanism,
                                              const std::string& token) {
    FakeUpstream::Config config;
    config.cert_file = pki_->good_cert;
    config.key_file = pki_->good_key;
    config.implicit_tls = true;
    config.auth_mechanisms = {mechanism};
    config.auth_username = kUser;
    config.auth_token = token;
    config.require_auth = true;
    return config;
  }

  // One endpoint; no pooling, so every client session makes (and authenticates) a new
  // upstream connection.
  // One loop: each loop ([server] workers) has its own token source and cache, and these
  // tests count one source's runs, reads and refusals.
  static RelaySettings settings(std::uint16_t port, const std::string& auth_lines) {
    RelaySettings settings;
    settings.server_extra = "workers = 1";
    settings.relay_extra = "pool_max_per_endpoint = 0";
    settings.upstreams = {tls_upstream("oauth", port, "implicit", pki_->ca_cert,
                                       "username = \"" + std::string(kUser) + "\"\n" + auth_lines)};
    return settings;
  }

  std::string write_token(const std::string& token) {
    std::string path = dir_.write_file("token", token + "\n");
    ::chmod(path.c_str(), 0600);
    return path;
  }

  static SmtpReply send_one(RelayUnderTest& relay, const std::string& subject) {
    auto client = relay.client();
    return client->send_message("a@example.test", {"b@example.test"}, sample_message(subject));
  }

  TempDir dir_{"portrelay-integ-oauth-token"};
  static TempDir* pki_dir_;
  static tls::GeneratedPki* pki_;
};

TempDir* RelayOAuth::pki_dir_ = nullptr;
tls::GeneratedPki* RelayOAuth::pki_ = nullptr;

// Everything a leak of a token could look like in a log line.
void expect_no_token(const std::string& logs) {
  for (const char* token : {kFirstToken, kRotatedToken}) {
    EXPECT_EQ(logs.find(token), std::string::npos) << token;
    std::string xoauth2 =
        "user=" + std::string(kUser) + "\x01" + "auth=Bearer " + token + "\x01\x01";
    EXPECT_EQ(logs.find(base64_encode(xoauth2)), std::string::npos);
  }
  EXPECT_EQ(logs.find("Bearer"), std::string::npos) << logs;
}

class CapturedLogs {
 public:
  CapturedLogs() {
    log::set_enabled(true);
    ::testing::internal::CaptureStderr();
  }
  std::string finish() {
    std::string text = ::testing::internal::GetCapturedStderr();
    log::set_enabled(std::getenv("PORTRELAY_TEST_LOG") != nullptr);
    return text;
  }
};

TEST_F(RelayOAuth, XOAuth2TokenFileIsReReadWhenTheUpstreamRefusesTheRotatedOutToken) {
  FakeUpstream upstream(upstream_config("XOAUTH2", kFirstToken));
  const std::string token_file = write_token(kFirstToken);
  // A long lifetime: only the refusal can make the relay read the file again.
  RelaySettings relay_settings =
      settings(upstream.port(), "auth = \"xoauth2\"\noauth_token_file = \"" + token_file +
                                    "\"\noauth_token_lifetime = \"1h\"\n");
  CapturedLogs capture;
  {
    RelayUnderTest relay(relay_settings);
    SmtpReply first = send_one(relay, "before rotation");
    EXPECT_EQ(first.code, 250) << first.raw;

    // The token is rotated: the file gets the new one and the old one stops working.
    write_token(kRotatedToken);
    upstream.set_auth_token(kRotatedToken);
    SmtpReply second = send_one(relay, "after rotation");
    EXPECT_EQ(second.code, 250) << second.raw;
    EXPECT_TRUE(upstream.wait_for_transactions(2, 2s));
    EXPECT_EQ(relay.metric("portrelay_upstream_connect_failures_total",
                           {{"upstream", "oauth"}, {"reason", "auth_failed"}}),
              0);
  }
  std::string logs = capture.finish();
  ASSERT_EQ(upstream.transactions().size(), 2u);
  EXPECT_EQ(upstream.transactions()[1].auth_user, kUser);
  auto attempts = upstream.auth_attempts();
  ASSERT_EQ(attempts.size(), 3u);
  EXPECT_EQ(attempts[0].mechanism, "XOAUTH2");
  EXPECT_EQ(attempts[0].password, kFirstToken);
  EXPECT_TRUE(attempts[0].success);
  // Second connection: the cached token is refused, then the re-read one works on the
  // same connection.
  EXPECT_EQ(attempts[1].password, kFirstToken);
  EXPECT_FALSE(attempts[1].success);
  EXPECT_EQ(attempts[2].password, kRotatedToken);
  EXPECT_TRUE(attempts[2].success);
  EXPECT_EQ(attempts[1].connection, attempts[2].connection);
  // On the wire: AUTH, the empty acknowledgement of the 334 error challenge, AUTH again.
  const auto commands = upstream.commands(attempts[1].connection);
  std::vector<std::string> auth_lines;
  for (std::size_t i = 0; i < commands.size(); ++i) {
    if (commands[i].rfind("AUTH XOAUTH2 ", 0) == 0) {
      auth_lines.push_back(commands[i]);
      if (auth_lines.size() == 1) {
        ASSERT_LT(i + 1, commands.size());
        EXPECT_EQ(commands[i + 1], "");
      }
    }
  }
  EXPECT_EQ(auth_lines.size(), 2u);
  EXPECT_NE(logs.find("event=message"), std::string::npos) << logs;
  expect_no_token(logs);
}

TEST_F(RelayOAuth, OAuthBearerTokenCommandIsRunWithItsArgumentsAndReRunOnRefusal) {
  FakeUpstream upstream(upstream_config("OAUTHBEARER", kFirstToken));
  const std::string token_file = write_token(kFirstToken);
  const std::string runs = dir_.file("runs");
  // A token helper: prints the token for the account it is asked about, counts its runs.
  const std::string script = dir_.write_file(
      "get-token",
      "#!/bin/sh\n[ \"$1\" = --account ] && [ \"$2\" = relay ] || exit 2\necho run >> " + runs +
          "\nhead -n 1 " + token_file + "\n");
  ::chmod(script.c_str(), 0700);
  RelaySettings relay_settings =
      settings(upstream.port(), "auth = \"oauthbearer\"\noauth_token_command = \"" + script +
                                    " --account relay\"\noauth_token_lifetime = \"1h\"\n");
  CapturedLogs capture;
  {
    RelayUnderTest relay(relay_settings);
    EXPECT_EQ(send_one(relay, "one").code, 250);
    EXPECT_EQ(send_one(relay, "two (cached token)").code, 250);
    write_token(kRotatedToken);
    upstream.set_auth_token(kRotatedToken);
    SmtpReply third = send_one(relay, "three (rotated)");
    EXPECT_EQ(third.code, 250) << third.raw;
    EXPECT_TRUE(upstream.wait_for_transactions(3, 2s));
  }
  std::string logs = capture.finish();
  auto attempts = upstream.auth_attempts();
  ASSERT_EQ(attempts.size(), 4u);
  EXPECT_EQ(attempts[0].mechanism, "OAUTHBEARER");
  EXPECT_TRUE(attempts[0].success);
  EXPECT_TRUE(attempts[1].success);
  EXPECT_FALSE(attempts[2].success);
  EXPECT_TRUE(attempts[3].success);
  EXPECT_EQ(attempts[3].password, kRotatedToken);
  // OAUTHBEARER's acknowledgement of the error challenge is a lone ^A.
  const auto commands = upstream.commands(attempts[2].connection);
  EXPECT_NE(std::find(commands.begin(), commands.end(), "AQ=="), commands.end());
  // Once at the first connection, once after the refusal: the cache covered the second.
  std::ifstream counted(runs);
  std::size_t lines = 0;
  for (std::string line; std::getline(counted, line);) ++lines;
  EXPECT_EQ(lines, 2u);
  expect_no_token(logs);
}

TEST_F(RelayOAuth, TokenLifetimeBoundsHowLongACachedTokenIsUsed) {
  FakeUpstream upstream(upstream_config("XOAUTH2", kFirstToken));
  const std::string runs = dir_.file("runs");
  const std::string script = dir_.write_file(
      "get-token", "#!/bin/sh\necho run >> " + runs + "\necho " + std::string(kFirstToken) + "\n");
  ::chmod(script.c_str(), 0700);
  RelaySettings relay_settings =
      settings(upstream.port(), "auth = \"xoauth2\"\noauth_token_command = \"" + script +
                                    "\"\noauth_token_lifetime = \"300ms\"\n");
  RelayUnderTest relay(relay_settings);
  EXPECT_EQ(send_one(relay, "one").code, 250);
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(send_one(relay, "two").code, 250);
  std::ifstream counted(runs);
  std::size_t lines = 0;
  for (std::string line; std::getline(counted, line);) ++lines;
  EXPECT_EQ(lines, 2u);
}

TEST_F(RelayOAuth, FailingTokenCommandIsAuthFailedWithItsExitStatus) {
  FakeUpstream upstream(upstream_config("XOAUTH2", kFirstToken));
  const std::string script = dir_.write_file("get-token", "#!/bin/sh\nexit 3\n");
  ::chmod(script.c_str(), 0700);
  RelayUnderTest relay(
      settings(upstream.port(), "auth = \"xoauth2\"\noauth_token_command = \"" + script + "\"\n"));
  auto client = relay.client();
  SmtpReply reply = client->command("MAIL FROM:<a@example.test>");
  EXPECT_EQ(reply.code, 451) << reply.raw;
  EXPECT_NE(reply.text.find("auth_failed"), std::string::npos) << reply.raw;
  EXPECT_EQ(upstream.connection_count(), 0u);  // no connection without a token
}

// Issue 16: the command used to run on the loop thread, so a hanging one stopped every
// session, probe and heartbeat for up to 10 s per attempt (/healthz answered 503 after 5).
// Now it delays only what needs its token.
TEST_F(RelayOAuth, AHangingTokenCommandDelaysNoOtherSessionAndHealthzStaysUp) {
  FakeUpstream oauth_upstream(upstream_config("XOAUTH2", kFirstToken));
  FakeUpstream plain;
  const std::string started = dir_.file("started");
  const std::string script = dir_.write_file(
      "get-token", "#!/bin/sh\ntouch " + started + "\nsleep 30\necho " + kFirstToken + "\n");
  ::chmod(script.c_str(), 0700);
  RelaySettings relay_settings;
  relay_settings.metrics = "listen = \"127.0.0.1:0\"";
  // The start-up probe of every endpoint runs at once: the OAuth endpoint's runs the command.
  relay_settings.probe_interval = "60s";
  relay_settings.upstreams = {
      plain_upstream("plain", plain.port()),
      tls_upstream("oauth", oauth_upstream.port(), "implicit", pki_->ca_cert,
                   "username = \"" + std::string(kUser) +
                       "\"\nauth = \"xoauth2\"\noauth_token_command = \"" + script + "\"\n")};
  RelayUnderTest relay(relay_settings);
  const auto until = std::chrono::steady_clock::now() + 3s;
  while (!std::ifstream(started) && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(std::ifstream(started)) << "the token command did not start";
  const auto hanging_since = std::chrono::steady_clock::now();

  // A session without OAuth: relayed over "plain" at once.
  auto sent_at = std::chrono::steady_clock::now();
  EXPECT_EQ(send_one(relay, "while the token command hangs").code, 250);
  EXPECT_LT(std::chrono::steady_clock::now() - sent_at, 1s);
  EXPECT_EQ(plain.transactions().size(), 1u);

  // /healthz stays 200 past its 5 s loop deadline, each answer within a second.
  const std::uint16_t port = relay.daemon().metrics_port();
  while (std::chrono::steady_clock::now() - hanging_since < 6s) {
    const auto asked = std::chrono::steady_clock::now();
    HttpReply live = http_get(port, "/healthz");
    ASSERT_EQ(live.status, 200) << live.body;
    EXPECT_LT(std::chrono::steady_clock::now() - asked, 1s);
    std::this_thread::sleep_for(250ms);
  }
  EXPECT_EQ(oauth_upstream.connection_count(), 0u) << "no token yet, no connection";
  // Stopping does not wait for the command: the probe is cancelled and the run killed.
  const auto stopping = std::chrono::steady_clock::now();
  relay.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, 3s);
}

// Sessions that need the token while its command runs wait for that one run.
TEST_F(RelayOAuth, SessionsThatNeedTheTokenTogetherShareOneRunOfTheCommand) {
  FakeUpstream upstream(upstream_config("XOAUTH2", kFirstToken));
  const std::string runs = dir_.file("runs");
  const std::string script =
      dir_.write_file("get-token", "#!/bin/sh\necho run >> " + runs + "\nsleep 1\necho " +
                                       std::string(kFirstToken) + "\n");
  ::chmod(script.c_str(), 0700);
  RelayUnderTest relay(settings(upstream.port(), "auth = \"xoauth2\"\noauth_token_command = \"" +
                                                     script +
                                                     "\"\noauth_token_lifetime = \"1h\"\n"));
  std::vector<std::future<int>> sent;
  for (int i = 0; i < 3; ++i)
    sent.push_back(std::async(std::launch::async, [&relay, i] {
      return send_one(relay, "together " + std::to_string(i)).code;
    }));
  for (auto& code : sent) EXPECT_EQ(code.get(), 250);
  std::ifstream counted(runs);
  std::size_t lines = 0;
  for (std::string line; std::getline(counted, line);) ++lines;
  EXPECT_EQ(lines, 1u);
  EXPECT_EQ(upstream.transactions().size(), 3u);
}

// A reload that changes only the token command is a change of how the endpoint logs in:
// the endpoint, cooling down after a failure, starts afresh (the new command may be the
// fix), and the reload line counts it as changed, not unchanged.
TEST_F(RelayOAuth, ReloadChangingOnlyTheTokenCommandStartsTheEndpointAfresh) {
  RefusedPort refused;
  FakeUpstream good;
  auto chain = [&](const std::string& command) {
    RelaySettings relay_settings;
    relay_settings.relay_extra = "cooldown = \"30s\"\n";
    relay_settings.upstreams = {
        tls_upstream("oauth", refused.port(), "implicit", pki_->ca_cert,
                     "username = \"" + std::string(kUser) +
                         "\"\nauth = \"xoauth2\"\noauth_token_command = \"" + command + "\"\n"),
        plain_upstream("good", good.port())};
    return relay_settings;
  };
  RelayUnderTest relay(chain("/bin/echo first-token"));
  const auto refused_attempts = [&]() {
    return relay.metric("portrelay_upstream_connect_attempts_total",
                        {{"upstream", "oauth"}, {"port", std::to_string(refused.port())}});
  };
  SmtpReply reply = send_one(relay, "before the reload");
  ASSERT_EQ(reply.code, 250) << reply.raw;
  EXPECT_EQ(refused_attempts(), 1);  // refused: cooling down for 30 s
  reply = send_one(relay, "still before");
  ASSERT_EQ(reply.code, 250) << reply.raw;
  EXPECT_EQ(refused_attempts(), 1);

  CapturedLogs capture;
  const bool applied = relay.reload(chain("/bin/echo second-token"));
  const std::string logs = capture.finish();
  ASSERT_TRUE(applied) << logs;
  EXPECT_NE(logs.find("event=reload "), std::string::npos) << logs;
  EXPECT_NE(logs.find(" changed=1 "), std::string::npos) << logs;
  EXPECT_NE(logs.find(" unchanged=1 "), std::string::npos) << logs;  // `good`

  reply = send_one(relay, "after the reload");
  ASSERT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via good:"), std::string::npos) << reply.raw;
  EXPECT_EQ(refused_attempts(), 2) << "the endpoint kept the cool-down of its old settings";
}

TEST_F(RelayOAuth, MechanismNotOfferedIsAuthFailedAndNothingIsSent) {
  FakeUpstream::Config config = upstream_config("PLAIN", "");
  config.auth_password = "unused";
  FakeUpstream upstream(config);
  const std::string token_file = write_token(kFirstToken);
  RelayUnderTest relay(
      settings(upstream.port(), "auth = \"xoauth2\"\noauth_token_file = \"" + token_file + "\"\n"));
  auto client = relay.client();
  SmtpReply reply = client->command("MAIL FROM:<a@example.test>");
  EXPECT_EQ(reply.code, 451) << reply.raw;
  EXPECT_NE(reply.text.find("auth_failed"), std::string::npos) << reply.raw;
  EXPECT_TRUE(upstream.auth_attempts().empty());
}

}  // namespace
}  // namespace portrelay::test
