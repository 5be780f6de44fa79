// TLS and AUTH on the submission side: STARTTLS and implicit TLS for local clients, the
// CVE-2011-0411 class of plaintext injection, and require_auth with a users file.
#include "portrelay/demo/test_pki.hpp"
#include "portrelay/server/password_hash.hpp"
#include "relay_harness.hpp"
#include "support/base64.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::test {
namespace {

constexpr const char* kClientUser = "app";
constexpr const char* kClientPassword = "client pass phrase";

class ListenerTlsBase : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("portrelay-integ-listener");
    pki_ = new tls::GeneratedPki(tls::generate_test_pki(dir_->path()));
    // Cheap scrypt parameters: the hash records them, and verification follows the record.
    std::string hash = server::hash_password(kClientPassword, {10, 8, 1});
    users_file_ = new std::string(
        dir_->write_file("users", "# test users\n" + std::string(kClientUser) + ":" + hash + "\n"));
  }
  static void TearDownTestSuite() {
    delete users_file_;
    delete pki_;
    delete dir_;
  }

  RelayUnderTest& relay(const std::string& server_extra = "") {
    if (!relay_) {
      RelaySettings settings;
      settings.server_extra = "tls_cert = \"" + pki_->good_cert + "\"\ntls_key = \"" +
                              pki_->good_key + "\"\n" + server_extra;
      settings.upstreams = {plain_upstream("a", upstream_.port())};
      relay_ = std::make_unique<RelayUnderTest>(settings);
    }
    return *relay_;
  }
  static TlsClientOptions tls_options() { return {pki_->ca_cert, "localhost"}; }
  static bool has_line(const SmtpReply& reply, const std::string& line) {
    return std::find(reply.lines.begin(), reply.lines.end(), line) != reply.lines.end();
  }
  static std::string plain_token(const std::string& user, const std::string& password) {
    return base64_encode(std::string(1, '\0') + user + '\0' + password);
  }

  static TempDir* dir_;
  static tls::GeneratedPki* pki_;
  static std::string* users_file_;
  FakeUpstream upstream_;
  std::unique_ptr<RelayUnderTest> relay_;
};

TempDir* ListenerTlsBase::dir_ = nullptr;
tls::GeneratedPki* ListenerTlsBase::pki_ = nullptr;
std::string* ListenerTlsBase::users_file_ = nullptr;

class RelayListenerTls : public ListenerTlsBase {};

TEST_F(RelayListenerTls, StartTlsThenRelay) {
  SmtpTestClient client(5s);
  client.connect("127.0.0.1", relay().port());
  EXPECT_EQ(client.read_reply().code, 220);
  SmtpReply ehlo = client.command("EHLO client.test");
  EXPECT_TRUE(has_line(ehlo, "STARTTLS")) << ehlo.raw;
  SmtpReply ready = client.starttls(tls_options());
  EXPECT_EQ(ready.code, 220);
  EXPECT_TRUE(client.is_tls());
  SmtpReply secure_ehlo = client.command("EHLO client.test");
  EXPECT_EQ(secure_ehlo.code, 250);
  EXPECT_FALSE(has_line(secure_ehlo, "STARTTLS")) << secure_ehlo.raw;
  SmtpReply reply = client.send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream_.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream_.transactions()[0].content, sample_message());
}

TEST_F(RelayListenerTls, MailBeforeEhloAfterStartTlsIsRefused) {
  // RFC 3207 4.2: the session starts over after TLS; the client must EHLO again.
  SmtpTestClient client(5s);
  client.connect("127.0.0.1", relay().port());
  EXPECT_EQ(client.read_reply().code, 220);
  EXPECT_EQ(client.command("EHLO client.test").code, 250);
  client.starttls(tls_options());
  EXPECT_EQ(client.command("MAIL FROM:<a@example.test>").code, 503);
}

TEST_F(RelayListenerTls, PlaintextPipelinedAfterStartTlsIsDiscarded) {
  SmtpTestClient client(5s);
  client.connect("127.0.0.1", relay().port());
  EXPECT_EQ(client.read_reply().code, 220);
  EXPECT_EQ(client.command("EHLO client.test").code, 250);
  client.starttls(tls_options(),
                  "EHLO evil.test\r\nMAIL FROM:<evil@example.test>\r\n"
                  "RCPT TO:<victim@example.test>\r\n");
  ASSERT_TRUE(client.is_tls());
  // Had the injected commands run inside TLS, these would be answered differently: the
  // first reply would be EHLO's, and RCPT would find a sender.
  SmtpReply noop = client.command("NOOP");
  EXPECT_EQ(noop.code, 250) << noop.raw;
  EXPECT_EQ(noop.lines.size(), 1u) << noop.raw;
  SmtpReply rcpt = client.command("RCPT TO:<b@example.test>");
  EXPECT_EQ(rcpt.code, 503) << rcpt.raw;
  EXPECT_EQ(client.command("EHLO client.test").code, 250);
  EXPECT_EQ(client.command("RCPT TO:<b@example.test>").code, 503);
  EXPECT_EQ(upstream_.connection_count(), 0u);
}

TEST_F(RelayListenerTls, ClientSilentAfterStartTlsIsCutOffByTheCommandTimeout) {
  // Between our 220 and the end of the TLS handshake the session waits for the client: a
  // client that never sends a ClientHello must not hold a session slot forever.
  relay("command_timeout = \"300ms\"\n");
  SmtpTestClient client(5s);
  client.connect("127.0.0.1", relay().port());
  EXPECT_EQ(client.read_reply().code, 220);
  EXPECT_EQ(client.command("EHLO client.test").code, 250);
  EXPECT_EQ(client.command("STARTTLS").code, 220);
  auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.closed(2s));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1500ms);
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (relay().metric("portrelay_client_sessions_active") != 0 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(relay().metric("portrelay_client_sessions_active"), 0);
}

TEST_F(RelayListenerTls, ImplicitTlsListenerRelays) {
  relay("listen_implicit_tls = [\"127.0.0.1:0\"]");
  auto ports = relay().daemon().listener_ports();
  ASSERT_EQ(ports.size(), 2u);
  SmtpTestClient client(5s);
  client.connect_tls("127.0.0.1", ports[1], tls_options());
  EXPECT_EQ(client.read_reply().code, 220);
  SmtpReply ehlo = client.command("EHLO client.test");
  EXPECT_EQ(ehlo.code, 250);
  EXPECT_FALSE(has_line(ehlo, "STARTTLS")) << ehlo.raw;
  SmtpReply reply = client.send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream_.wait_for_transactions(1, 2s));
}

TEST_F(RelayListenerTls, PlaintextClientOnImplicitTlsPortIsDropped) {
  relay("listen_implicit_tls = [\"127.0.0.1:0\"]");
  auto ports = relay().daemon().listener_ports();
  ASSERT_EQ(ports.size(), 2u);
  {
    SmtpTestClient client(2s);
    client.connect("127.0.0.1", ports[1]);
    client.send_raw("EHLO plaintext.client\r\n");
    EXPECT_TRUE(client.closed(2s));
  }
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (relay().metric("portrelay_client_sessions_active") != 0 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(relay().metric("portrelay_client_sessions_active"), 0);
  EXPECT_EQ(upstream_.connection_count(), 0u);
}

class RelayAuth : public ListenerTlsBase {
 protected:
  RelayUnderTest& auth_relay() {
    return relay("users_file = \"" + *users_file_ + "\"\nrequire_auth = true\n");
  }
  // Greeted, STARTTLS done, EHLO again.
  std::unique_ptr<SmtpTestClient> secure_client() {
    auto client = std::make_unique<SmtpTestClient>(5s);
    client->connect("127.0.0.1", auth_relay().port());
    EXPECT_EQ(client->read_reply().code, 220);
    EXPECT_EQ(client->command("EHLO client.test").code, 250);
    client->starttls(tls_options());
    SmtpReply ehlo = client->command("EHLO client.test");
    EXPECT_TRUE(has_line(ehlo, "AUTH PLAIN LOGIN")) << ehlo.raw;
    return client;
  }
};

TEST_F(RelayAuth, MailBeforeAuthIs530) {
  auto client = secure_client();
  SmtpReply reply = client->command("MAIL FROM:<a@example.test>");
  EXPECT_EQ(reply.code, 530) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "5.7.0 ") << reply.raw;
  EXPECT_EQ(upstream_.connection_count(), 0u);
}

TEST_F(RelayAuth, MailInPlaintextIs530) {
  SmtpTestClient client(5s);
  client.connect("127.0.0.1", auth_relay().port());
  EXPECT_EQ(client.read_reply().code, 220);
  SmtpReply ehlo = client.command("EHLO client.test");
  EXPECT_FALSE(has_line(ehlo, "AUTH PLAIN LOGIN")) << ehlo.raw;
  EXPECT_EQ(client.command("MAIL FROM:<a@example.test>").code, 530);
  EXPECT_EQ(upstream_.connection_count(), 0u);
}

TEST_F(RelayAuth, AuthPlainThenRelays) {
  auto client = secure_client();
  SmtpReply auth = client->command("AUTH PLAIN " + plain_token(kClientUser, kClientPassword));
  EXPECT_EQ(auth.code, 235) << auth.raw;
  EXPECT_EQ(auth.text.substr(0, 6), "2.7.0 ") << auth.raw;
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream_.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream_.transactions()[0].content, sample_message());
  // AUTH= is not forwarded (RFC 4954 5 allows dropping it) and the upstream session had none.
  EXPECT_EQ(upstream_.transactions()[0].auth_user, "");
}

TEST_F(RelayAuth, AuthPlainWithoutInitialResponse) {
  auto client = secure_client();
  SmtpReply challenge = client->command("AUTH PLAIN");
  EXPECT_EQ(challenge.code, 334) << challenge.raw;
  SmtpReply auth = client->command(plain_token(kClientUser, kClientPassword));
  EXPECT_EQ(auth.code, 235) << auth.raw;
  EXPECT_EQ(client->command("MAIL FROM:<a@example.test>").code, 250);
}

TEST_F(RelayAuth, CancelledAuthIs501) {
  auto client = secure_client();
  EXPECT_EQ(client->command("AUTH LOGIN").code, 334);
  SmtpReply cancelled = client->command("*");
  EXPECT_EQ(cancelled.code, 501) << cancelled.raw;
  EXPECT_EQ(client->command("MAIL FROM:<a@example.test>").code, 530);
}

TEST_F(RelayAuth, AuthLoginThenRelays) {
  auto client = secure_client();
  EXPECT_EQ(client->command("AUTH LOGIN").code, 334);
  EXPECT_EQ(client->command(base64_encode(kClientUser)).code, 334);
  SmtpReply auth = client->command(base64_encode(kClientPassword));
  EXPECT_EQ(auth.code, 235) << auth.raw;
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
}

TEST_F(RelayAuth, WrongPasswordIs535) {
  auto client = secure_client();
  SmtpReply auth = client->command("AUTH PLAIN " + plain_token(kClientUser, "wrong"));
  EXPECT_EQ(auth.code, 535) << auth.raw;
  EXPECT_EQ(auth.text.substr(0, 6), "5.7.8 ") << auth.raw;
  SmtpReply unknown = client->command("AUTH PLAIN " + plain_token("nobody", kClientPassword));
  EXPECT_EQ(unknown.code, 535) << unknown.raw;
  EXPECT_EQ(client->command("MAIL FROM:<a@example.test>").code, 530);
  EXPECT_EQ(upstream_.connection_count(), 0u);
}

TEST_F(RelayAuth, RepeatedFailuresAreDelayedMoreAndMoreThenDisconnected) {
  relay("users_file = \"" + *users_file_ +
        "\"\nrequire_auth = true\nauth_failure_delay = \"200ms\"\nmax_auth_failures = 3\n");
  auto timed_auth = [](SmtpTestClient& client, const std::string& password) {
    const auto started = std::chrono::steady_clock::now();
    SmtpReply reply = client.command("AUTH PLAIN " + plain_token(kClientUser, password));
    return std::make_pair(reply, std::chrono::steady_clock::now() - started);
  };
  auto client = secure_client();
  auto [first, first_wait] = timed_auth(*client, "wrong1");
  EXPECT_EQ(first.code, 535) << first.raw;
  EXPECT_GE(first_wait, 200ms);
  auto [second, second_wait] = timed_auth(*client, "wrong2");
  EXPECT_EQ(second.code, 535) << second.raw;
  EXPECT_GE(second_wait, 400ms);
  auto [third, third_wait] = timed_auth(*client, "wrong3");
  EXPECT_EQ(third.code, 535) << third.raw;
  EXPECT_GE(third_wait, 800ms);
  SmtpReply goodbye = client->read_reply();
  EXPECT_EQ(goodbye.code, 421) << goodbye.raw;
  EXPECT_EQ(goodbye.text.substr(0, 6), "4.7.0 ") << goodbye.raw;
  EXPECT_TRUE(client->closed(2s));

  // A new connection from the same address starts where the last one stopped (8 x 200ms),
  // while the right password is answered at once. 127.0.0.1 is a trusted network (no
  // per-address session cap), but its AUTH failures are still slowed down: local guessers
  // share one record instead of going at full speed.
  auto again = secure_client();
  auto [fourth, fourth_wait] = timed_auth(*again, "wrong4");
  EXPECT_EQ(fourth.code, 535) << fourth.raw;
  EXPECT_GE(fourth_wait, 1600ms);
  auto [good, good_wait] = timed_auth(*again, kClientPassword);
  EXPECT_EQ(good.code, 235) << good.raw;
  EXPECT_LT(good_wait, 1000ms);
  EXPECT_EQ(auth_relay().metric("portrelay_auth_failures_total"), 4);
}

TEST_F(RelayAuth, FailedAuthCountsTowardMaxErrors) {
  relay("users_file = \"" + *users_file_ +
        "\"\nrequire_auth = true\nauth_failure_delay = \"10ms\"\nmax_auth_failures = 100\n");
  auto client = secure_client();
  // max_errors is 10: nine unknown commands, then one wrong password ends the session.
  for (int i = 0; i < 9; ++i) EXPECT_EQ(client->command("FROB").code, 500);
  SmtpReply refused = client->command("AUTH PLAIN " + plain_token(kClientUser, "wrong"));
  EXPECT_EQ(refused.code, 535) << refused.raw;
  EXPECT_EQ(client->read_reply().code, 421);
  EXPECT_TRUE(client->closed(2s));
}

TEST_F(RelayAuth, AuthBeforeTlsIs538) {
  SmtpTestClient client(5s);
  client.connect("127.0.0.1", auth_relay().port());
  EXPECT_EQ(client.read_reply().code, 220);
  EXPECT_EQ(client.command("EHLO client.test").code, 250);
  SmtpReply reply = client.command("AUTH PLAIN " + plain_token(kClientUser, kClientPassword));
  EXPECT_EQ(reply.code, 538) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 7), "5.7.11 ") << reply.raw;
}

}  // namespace
}  // namespace portrelay::test
