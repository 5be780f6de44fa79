// TLS and AUTH towards the upstream: verified certificates, STARTTLS required means
// required, response injection, credentials that never show up in the logs.
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "portrelay/base/log.hpp"
#include "portrelay/demo/test_pki.hpp"
#include "relay_harness.hpp"
#include "support/base64.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::test {
namespace {

constexpr const char* kPasswordEnv = "PORTRELAY_INTEGRATION_UPSTREAM_PASSWORD";
constexpr const char* kUser = "relay-user";
constexpr const char* kPassword = "Upstream-S3cret-9f2c";

class RelayTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("portrelay-integ-tls");
    pki_ = new tls::GeneratedPki(tls::generate_test_pki(dir_->path()));
  }
  static void TearDownTestSuite() {
    delete pki_;
    delete dir_;
  }
  void SetUp() override { ::setenv(kPasswordEnv, kPassword, 1); }
  void TearDown() override { ::unsetenv(kPasswordEnv); }

  static FakeUpstream::Config tls_config(const std::string& cert, const std::string& key,
                                         bool implicit) {
    FakeUpstream::Config config;
    config.cert_file = cert;
    config.key_file = key;
    config.implicit_tls = implicit;
    config.offer_starttls = !implicit;
    return config;
  }
  static FakeUpstream::Config good(bool implicit) {
    return tls_config(pki_->good_cert, pki_->good_key, implicit);
  }
  static FakeUpstream::Config with_auth(FakeUpstream::Config config,
                                        std::vector<std::string> mechanisms) {
    config.auth_mechanisms = std::move(mechanisms);
    config.auth_username = kUser;
    config.auth_password = kPassword;
    config.require_auth = true;
    return config;
  }
  static std::string credentials() {
    return "username = \"" + std::string(kUser) + "\"\npassword_env = \"" + kPasswordEnv + "\"\n";
  }
  static std::string ca() { return pki_->ca_cert; }

  static bool saw(const FakeUpstream& upstream, const std::string& prefix) {
    for (const auto& commands : upstream.all_commands())
      for (const auto& command : commands)
        if (command.rfind(prefix, 0) == 0) return true;
    return false;
  }

  static TempDir* dir_;
  static tls::GeneratedPki* pki_;
};

TempDir* RelayTls::dir_ = nullptr;
tls::GeneratedPki* RelayTls::pki_ = nullptr;

TEST_F(RelayTls, ImplicitTlsDelivers) {
  FakeUpstream upstream(good(true));
  RelaySettings settings;
  settings.upstreams = {tls_upstream("a", upstream.port(), "implicit", ca())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  EXPECT_TRUE(upstream.transactions()[0].tls);
  EXPECT_EQ(upstream.transactions()[0].content, sample_message());
  EXPECT_TRUE(upstream.tls_failures().empty());
}

TEST_F(RelayTls, StartTlsDeliversAndForgetsPlaintextCapabilities) {
  FakeUpstream upstream(good(false));
  RelaySettings settings;
  settings.upstreams = {tls_upstream("a", upstream.port(), "starttls", ca())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  EXPECT_TRUE(upstream.transactions()[0].tls);
  auto commands = upstream.commands(0);
  ASSERT_GE(commands.size(), 4u);
  EXPECT_EQ(commands[0], "EHLO relay.test");
  EXPECT_EQ(commands[1], "STARTTLS");
  EXPECT_EQ(commands[2], "EHLO relay.test");
  EXPECT_EQ(commands[3], "MAIL FROM:<a@example.test>");
}

struct BadCertCase {
  const char* name;
  const char* tls;
  std::string tls::GeneratedPki::*cert;
  std::string tls::GeneratedPki::*key;
};

class RelayTlsVerify : public RelayTls, public ::testing::WithParamInterface<BadCertCase> {};

TEST_P(RelayTlsVerify, BadCertificateIsTlsVerifyAndFailsOver) {
  const BadCertCase& param = GetParam();
  bool implicit = std::string(param.tls) == "implicit";
  FakeUpstream bad(tls_config((*pki_).*param.cert, (*pki_).*param.key, implicit));
  FakeUpstream fallback;
  RelaySettings settings;
  settings.upstreams = {tls_upstream("bad", bad.port(), param.tls, ca()),
                        plain_upstream("fallback", fallback.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via fallback:"), std::string::npos) << reply.raw;
  ASSERT_TRUE(fallback.wait_for_transactions(1, 2s));
  EXPECT_TRUE(bad.transactions().empty());
  EXPECT_FALSE(saw(bad, "MAIL"));
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_failures_total",
                         {{"upstream", "bad"}, {"reason", "tls_verify"}}),
            1)
      << relay.metrics_text();
}

INSTANTIATE_TEST_SUITE_P(
    Certificates, RelayTlsVerify,
    ::testing::Values(
        BadCertCase{"WrongHostImplicit", "implicit", &tls::GeneratedPki::wrong_host_cert,
                    &tls::GeneratedPki::wrong_host_key},
        BadCertCase{"WrongHostStartTls", "starttls", &tls::GeneratedPki::wrong_host_cert,
                    &tls::GeneratedPki::wrong_host_key},
        BadCertCase{"ExpiredImplicit", "implicit", &tls::GeneratedPki::expired_cert,
                    &tls::GeneratedPki::expired_key},
        BadCertCase{"SelfSignedImplicit", "implicit", &tls::GeneratedPki::self_signed_cert,
                    &tls::GeneratedPki::self_signed_key},
        BadCertCase{"SelfSignedStartTls", "starttls", &tls::GeneratedPki::self_signed_cert,
                    &tls::GeneratedPki::self_signed_key}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(RelayTls, PlaintextServerOnImplicitTlsEndpointIsTlsHandshake) {
  FakeUpstream plaintext;  // greets in clear text where TLS is expected
  FakeUpstream fallback;
  RelaySettings settings;
  settings.upstreams = {tls_upstream("plaintext", plaintext.port(), "implicit", ca()),
                        plain_upstream("fallback", fallback.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(fallback.wait_for_transactions(1, 2s));
  EXPECT_FALSE(saw(plaintext, "MAIL"));
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_failures_total",
                         {{"upstream", "plaintext"}, {"reason", "tls_handshake"}}),
            1)
      << relay.metrics_text();
}

TEST_F(RelayTls, StartTlsNotOfferedIsAFailureNotAPlaintextSend) {
  FakeUpstream plain_only;  // no STARTTLS in its EHLO
  FakeUpstream fallback(good(true));
  RelaySettings settings;
  settings.upstreams = {tls_upstream("plain", plain_only.port(), "starttls", ca()),
                        tls_upstream("fallback", fallback.port(), "implicit", ca())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(fallback.wait_for_transactions(1, 2s));
  EXPECT_FALSE(saw(plain_only, "MAIL"));
  EXPECT_FALSE(saw(plain_only, "RCPT"));
  EXPECT_TRUE(plain_only.transactions().empty());
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_failures_total",
                         {{"upstream", "plain"}, {"reason", "starttls_unavailable"}}),
            1);
}

TEST_F(RelayTls, StartTlsRefusedIsStartTlsUnavailable) {
  FakeUpstream::Config config = good(false);
  config.overrides[SmtpStage::kStartTls] = StageAction::reply_with("454 4.7.0 TLS not available");
  FakeUpstream refusing(config);
  RelaySettings settings;
  settings.upstreams = {tls_upstream("refusing", refusing.port(), "starttls", ca())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->command("MAIL FROM:<a@example.test>");
  EXPECT_EQ(reply.code, 451) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "4.4.1 ") << reply.raw;
  EXPECT_FALSE(saw(refusing, "MAIL"));
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_failures_total",
                         {{"upstream", "refusing"}, {"reason", "starttls_unavailable"}}),
            1);
}

TEST_F(RelayTls, InjectedReplyAfterStartTlsIsIgnored) {
  FakeUpstream::Config config = good(false);
  config.starttls_injection = true;
  FakeUpstream upstream(config);
  RelaySettings settings;
  settings.upstreams = {tls_upstream("a", upstream.port(), "starttls", ca())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  EXPECT_EQ(client->command("MAIL FROM:<a@example.test> BODY=8BITMIME").code, 250);
  EXPECT_EQ(client->command("RCPT TO:<b@example.test>").code, 250);
  EXPECT_EQ(client->command("DATA").code, 354);
  client->send_raw(sample_message() + ".\r\n");
  SmtpReply reply = client->read_reply();
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  auto transaction = upstream.transactions()[0];
  EXPECT_TRUE(transaction.tls);
  EXPECT_EQ(transaction.content, sample_message());
  // BODY= is only passed on when the post-TLS EHLO answer (with 8BITMIME) was the one used.
  EXPECT_EQ(transaction.mail_params, "BODY=8BITMIME");
  auto commands = upstream.commands(0);
  ASSERT_GE(commands.size(), 4u);
  EXPECT_EQ(commands[1], "STARTTLS");
  EXPECT_EQ(commands[2], "EHLO relay.test");
  EXPECT_EQ(commands[3], "MAIL FROM:<a@example.test> BODY=8BITMIME");
}

// Everything a leak of the secret could look like in a log line.
void expect_no_secret(const std::string& logs) {
  EXPECT_EQ(logs.find(kPassword), std::string::npos);
  EXPECT_EQ(logs.find(base64_encode(kPassword)), std::string::npos);
  std::string plain = std::string(1, '\0') + kUser + '\0' + kPassword;
  EXPECT_EQ(logs.find(base64_encode(plain)), std::string::npos);
}

// Turns the daemon's log on and captures stderr for one scope.
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

class RelayTlsAuth : public RelayTls, public ::testing::WithParamInterface<std::string> {};

TEST_P(RelayTlsAuth, AuthenticatesAndDelivers) {
  FakeUpstream upstream(with_auth(good(false), {GetParam()}));
  RelaySettings settings;
  settings.upstreams = {tls_upstream("a", upstream.port(), "starttls", ca(), credentials())};
  CapturedLogs capture;
  {
    RelayUnderTest relay(settings);
    auto client = relay.client();
    SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
    EXPECT_EQ(reply.code, 250) << reply.raw;
    EXPECT_TRUE(upstream.wait_for_transactions(1, 2s));
  }
  std::string logs = capture.finish();
  ASSERT_EQ(upstream.transactions().size(), 1u);
  EXPECT_EQ(upstream.transactions()[0].auth_user, kUser);
  auto attempts = upstream.auth_attempts();
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].mechanism, GetParam());
  EXPECT_TRUE(attempts[0].success);
  EXPECT_TRUE(attempts[0].tls);
  EXPECT_NE(logs.find("event=message"), std::string::npos) << logs;
  expect_no_secret(logs);
}

INSTANTIATE_TEST_SUITE_P(Mechanisms, RelayTlsAuth, ::testing::Values("PLAIN", "LOGIN"));

TEST_F(RelayTls, AuthRejectedIsAuthFailedAndFailsOver) {
  FakeUpstream::Config config = with_auth(good(true), {"PLAIN", "LOGIN"});
  config.auth_password = "something-else";
  FakeUpstream rejecting(config);
  FakeUpstream fallback;
  RelaySettings settings;
  settings.upstreams = {
      tls_upstream("rejecting", rejecting.port(), "implicit", ca(), credentials()),
      plain_upstream("fallback", fallback.port())};
  CapturedLogs capture;
  {
    RelayUnderTest relay(settings);
    auto client = relay.client();
    SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
    EXPECT_EQ(reply.code, 250) << reply.raw;
    EXPECT_NE(reply.text.find("relayed via fallback:"), std::string::npos) << reply.raw;
    EXPECT_TRUE(fallback.wait_for_transactions(1, 2s));
    EXPECT_EQ(relay.metric("portrelay_upstream_connect_failures_total",
                           {{"upstream", "rejecting"}, {"reason", "auth_failed"}}),
              1);
  }
  std::string logs = capture.finish();
  EXPECT_TRUE(rejecting.transactions().empty());
  ASSERT_EQ(rejecting.auth_attempts().size(), 1u);
  EXPECT_FALSE(rejecting.auth_attempts()[0].success);
  EXPECT_EQ(rejecting.auth_attempts()[0].password, kPassword);  // it was really sent
  EXPECT_NE(logs.find("auth_failed"), std::string::npos) << logs;
  expect_no_secret(logs);
}

// The same with `[log] format = "json"`: every line is a JSON object, and neither the raw
// lines nor the decoded values (JSON escaping could hide a leak from a plain search) hold
// the secret.
TEST_F(RelayTls, JsonLogsNeverCarryTheSecret) {
  FakeUpstream::Config config = with_auth(good(true), {"PLAIN", "LOGIN"});
  config.auth_password = "something-else";
  FakeUpstream rejecting(config);
  FakeUpstream fallback;
  RelaySettings settings;
  settings.upstreams = {
      tls_upstream("rejecting", rejecting.port(), "implicit", ca(), credentials()),
      plain_upstream("fallback", fallback.port())};
  log::set_format(log::Format::Json);
  log::set_min_level(log::Level::Debug);
  CapturedLogs capture;
  {
    RelayUnderTest relay(settings);
    auto client = relay.client();
    SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
    EXPECT_EQ(reply.code, 250) << reply.raw;
    EXPECT_TRUE(fallback.wait_for_transactions(1, 2s));
  }
  std::string logs = capture.finish();
  log::set_format(log::Format::Logfmt);
  log::set_min_level(log::Level::Info);
  ASSERT_EQ(rejecting.auth_attempts().size(), 1u);
  EXPECT_EQ(rejecting.auth_attempts()[0].password, kPassword);  // it was really sent
  std::string decoded;
  std::istringstream lines(logs);
  std::size_t count = 0;
  for (std::string line; std::getline(lines, line); ++count) {
    const auto object = nlohmann::json::parse(line);  // throws if a line is not JSON
    for (const auto& [key, value] : object.items()) {
      decoded += key + "=" + value.get<std::string>() + "\n";
    }
  }
  EXPECT_GT(count, 3u) << logs;
  EXPECT_NE(decoded.find("auth_failed"), std::string::npos) << decoded;
  EXPECT_NE(decoded.find("event=message"), std::string::npos) << decoded;
  expect_no_secret(logs);
  expect_no_secret(decoded);
}

// --debug-transcript: every upstream line in and out, AUTH data and the body left out.
TEST_F(RelayTls, DebugTranscriptShowsTheDialogueWithoutSecretsOrBody) {
  FakeUpstream upstream(with_auth(good(true), {"PLAIN", "LOGIN"}));
  RelaySettings settings;
  settings.upstreams = {tls_upstream("a", upstream.port(), "implicit", ca(), credentials())};
  const std::string secret_line = "Body-Line-Only-The-Upstream-Sees-7q";
  log::set_transcript(true);
  CapturedLogs capture;
  {
    RelayUnderTest relay(settings);
    auto client = relay.client();
    SmtpReply reply = client->send_message("a@example.test", {"b@example.test"},
                                           "Subject: transcript\r\n\r\n" + secret_line + "\r\n");
    EXPECT_EQ(reply.code, 250) << reply.raw;
  }
  std::string logs = capture.finish();
  log::set_transcript(false);
  EXPECT_TRUE(saw(upstream, "AUTH PLAIN"));  // the secret really went over the wire
  for (const char* expected :
       {"dir=out line=\"EHLO ", "dir=in line=\"250-", "dir=out line=\"AUTH PLAIN <not logged>\"",
        "dir=in line=\"235 ", "dir=out line=\"MAIL FROM:<a@example.test>", "dir=in line=\"354 ",
        "octets, not logged>\"", "dir=out line=.", "dir=in line=\"250 2.0.0 Ok: queued as"})
    EXPECT_NE(logs.find(expected), std::string::npos) << expected << "\n" << logs;
  EXPECT_EQ(logs.find(secret_line), std::string::npos);
  expect_no_secret(logs);
}

TEST_F(RelayTls, AllEndpointsRejectingAuthGive451WithoutTheSecret) {
  FakeUpstream::Config config = with_auth(good(true), {"PLAIN"});
  config.overrides[SmtpStage::kAuth] = StageAction::reply_with("535 5.7.8 Bad credentials");
  FakeUpstream rejecting(config);
  RelaySettings settings;
  settings.upstreams = {
      tls_upstream("rejecting", rejecting.port(), "implicit", ca(), credentials())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->command("MAIL FROM:<a@example.test>");
  EXPECT_EQ(reply.code, 451) << reply.raw;
  EXPECT_EQ(reply.raw.find(kPassword), std::string::npos);
  EXPECT_NE(reply.text.find("auth_failed"), std::string::npos) << reply.raw;
}

TEST_F(RelayTls, CredentialsAreNeverSentWithoutTls) {
  // "opportunistic" with credentials on a server without STARTTLS must not AUTH in clear.
  FakeUpstream::Config config;
  config.auth_mechanisms = {"PLAIN", "LOGIN"};
  config.auth_requires_tls = false;
  config.auth_username = kUser;
  config.auth_password = kPassword;
  FakeUpstream cleartext(config);
  RelaySettings settings;
  settings.upstreams = {"[[upstream]]\nname = \"clear\"\nhost = \"127.0.0.1\"\nport = " +
                        std::to_string(cleartext.port()) + "\ntls = \"opportunistic\"\n" +
                        credentials()};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->command("MAIL FROM:<a@example.test>");
  EXPECT_EQ(reply.code, 451) << reply.raw;
  EXPECT_TRUE(cleartext.auth_attempts().empty());
  EXPECT_FALSE(saw(cleartext, "AUTH"));
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_failures_total",
                         {{"upstream", "clear"}, {"reason", "starttls_unavailable"}}),
            1);
}

}  // namespace
}  // namespace portrelay::test
