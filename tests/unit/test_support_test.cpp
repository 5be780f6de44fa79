// Tests for the test peers themselves: if these lie, every relay test built on them lies too.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "support/base64.hpp"
#include "support/blocked_ports.hpp"
#include "support/fake_upstream.hpp"
#include "support/smtp_test_client.hpp"
#include "support/socket_util.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::vector<std::string> kDefaultEhloLines = {"fake.upstream", "PIPELINING", "SIZE 52428800",
                                                    "8BITMIME", "ENHANCEDSTATUSCODES"};

long long elapsed_ms(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

void connect_and_ehlo(SmtpTestClient& client, const FakeUpstream& upstream) {
  client.connect(upstream.host(), upstream.port());
  ASSERT_EQ(client.read_reply().code, 220);
  ASSERT_EQ(client.command("EHLO relay.test").code, 250);
}

TEST(SupportTempDir, CreatesDirectoryAndRemovesItWithContents) {
  std::string path;
  {
    TempDir dir("support-test");
    path = dir.path();
    EXPECT_EQ(path.rfind("/tmp/support-test-", 0), 0u) << path;
    ASSERT_TRUE(std::filesystem::is_directory(path));
    std::filesystem::create_directory(dir.file("sub"));
    std::string file = dir.write_file("sub/a.txt", "hello");
    EXPECT_EQ(file, path + "/sub/a.txt");
    EXPECT_EQ(std::filesystem::file_size(file), 5u);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(SupportBase64, MatchesRfc4648Vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode(std::string("\0user\0pass", 10)), "AHVzZXIAcGFzcw==");
  EXPECT_EQ(base64_decode("Zm9vYg=="), "foob");
  EXPECT_EQ(base64_decode("AHVzZXIAcGFzcw=="), std::string("\0user\0pass", 10));
  EXPECT_EQ(base64_decode("Zm9"), std::nullopt);
  EXPECT_EQ(base64_decode("Zm=v"), std::nullopt);
  EXPECT_EQ(base64_decode("Zm9v!A=="), std::nullopt);
}

TEST(SupportDotStuffing, StuffsOnlyDotsAtCrlfLineStarts) {
  std::string content = ".a\r\nb.c\r\n..d\r\n.\r\nx\n.y\r\n";
  std::string stuffed = dot_stuff(content);
  EXPECT_EQ(stuffed, "..a\r\nb.c\r\n...d\r\n..\r\nx\n.y\r\n");
  EXPECT_EQ(dot_unstuff(stuffed), content);
}

TEST(SupportFakeUpstream, ReceivesMessageByteExact) {
  FakeUpstream upstream;
  SmtpTestClient client(2s);
  client.connect(upstream.host(), upstream.port());
  SmtpReply greeting = client.read_reply();
  EXPECT_EQ(greeting.code, 220);
  EXPECT_EQ(greeting.text, "fake.upstream ESMTP");
  SmtpReply ehlo = client.command("EHLO relay.test");
  EXPECT_EQ(ehlo.code, 250);
  EXPECT_EQ(ehlo.lines, kDefaultEhloLines);
  EXPECT_EQ(ehlo.raw,
            "250-fake.upstream\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n"
            "250 ENHANCEDSTATUSCODES\r\n");

  const std::string content =
      "Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\nmiddle . dot\r\n.\r\nend\r\n";
  SmtpReply done =
      client.send_message("a@example.org", {"b@example.net", "c@example.net"}, content);
  EXPECT_EQ(done.code, 250);
  EXPECT_EQ(done.text, "2.0.0 Ok: queued as 1");
  SmtpReply quit = client.command("QUIT");
  EXPECT_EQ(quit.code, 221);
  EXPECT_TRUE(client.closed());

  ASSERT_TRUE(upstream.wait_for_transactions(1, 1s));
  std::vector<FakeUpstream::Transaction> transactions = upstream.transactions();
  ASSERT_EQ(transactions.size(), 1u);
  const FakeUpstream::Transaction& t = transactions[0];
  EXPECT_EQ(t.mail_from, "a@example.org");
  EXPECT_EQ(t.mail_params, "");
  EXPECT_EQ(t.rcpt_to, (std::vector<std::string>{"b@example.net", "c@example.net"}));
  EXPECT_EQ(t.raw_data,
            "Subject: dots\r\n\r\n..leading dot\r\n...two dots\r\nmiddle . dot\r\n..\r\nend\r\n");
  EXPECT_EQ(t.content, content);
  EXPECT_FALSE(t.tls);
  EXPECT_EQ(upstream.connection_count(), 1u);
  EXPECT_EQ(upstream.commands(0),
            (std::vector<std::string>{"EHLO relay.test", "MAIL FROM:<a@example.org>",
                                      "RCPT TO:<b@example.net>", "RCPT TO:<c@example.net>", "DATA",
                                      "QUIT"}));
}

TEST(SupportFakeUpstream, AnswersPipelinedCommandsInOrder) {
  FakeUpstream upstream;
  SmtpTestClient client(2s);
  client.connect(upstream.host(), upstream.port());
  ASSERT_EQ(client.read_reply().code, 220);
  client.send_raw(
      "EHLO relay.test\r\nMAIL FROM:<> SIZE=12 BODY=8BITMIME\r\nRCPT TO:<x@y>\r\nDATA\r\n");
  EXPECT_EQ(client.read_reply().code, 250);
  EXPECT_EQ(client.read_reply().text, "2.1.0 Ok");
  EXPECT_EQ(client.read_reply().text, "2.1.5 Ok");
  EXPECT_EQ(client.read_reply().code, 354);
  // Data, a second transaction with an empty body, and QUIT in one write.
  client.send_raw("hi\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@y>\r\nDATA\r\n.\r\nQUIT\r\n");
  EXPECT_EQ(client.read_reply().text, "2.0.0 Ok: queued as 1");
  EXPECT_EQ(client.read_reply().code, 250);
  EXPECT_EQ(client.read_reply().code, 250);
  EXPECT_EQ(client.read_reply().code, 354);
  EXPECT_EQ(client.read_reply().text, "2.0.0 Ok: queued as 2");
  EXPECT_EQ(client.read_reply().code, 221);

  ASSERT_TRUE(upstream.wait_for_transactions(2, 1s));
  auto transactions = upstream.transactions();
  EXPECT_EQ(transactions[0].mail_from, "");
  EXPECT_EQ(transactions[0].mail_params, "SIZE=12 BODY=8BITMIME");
  EXPECT_EQ(transactions[0].raw_data, "hi\r\n");
  EXPECT_EQ(transactions[1].mail_from, "a@b");
  EXPECT_EQ(transactions[1].raw_data, "");
  EXPECT_EQ(transactions[1].content, "");
}

TEST(SupportFakeUpstream, HandlesTwentyMebibyteMessage) {
  FakeUpstream upstream;
  SmtpTestClient client(5s);
  connect_and_ehlo(client, upstream);
  std::string line(98, 'x');
  line += "\r\n";
  std::string content;
  content.reserve(20 * 1024 * 1024 + line.size());
  while (content.size() < 20 * 1024 * 1024) content += line;
  content += ".dot\r\n";
  auto start = Clock::now();
  SmtpReply done = client.send_message("a@b", {"c@d"}, content);
  EXPECT_EQ(done.code, 250);
  EXPECT_LT(elapsed_ms(start), 3000);
  auto transactions = upstream.transactions();
  ASSERT_EQ(transactions.size(), 1u);
  EXPECT_EQ(transactions[0].content.size(), content.size());
  EXPECT_TRUE(transactions[0].content == content);
  EXPECT_EQ(transactions[0].raw_data.size(), content.size() + 1);
}

TEST(SupportFakeUpstream, EnforcesCommandSequence) {
  FakeUpstream upstream;
  SmtpTestClient client(2s);
  client.connect(upstream.host(), upstream.port());
  ASSERT_EQ(client.read_reply().code, 220);
  EXPECT_EQ(client.command("MAIL FROM:<a@b>").text, "5.5.1 Send EHLO first");
  EXPECT_EQ(client.command("HELO relay.test").text, "fake.upstream");
  EXPECT_EQ(client.command("MAIL FROM a@b").code, 501);
  EXPECT_EQ(client.command("RCPT TO:<a@b>").code, 503);
  EXPECT_EQ(client.command("MAIL FROM:<a@b>").code, 250);
  EXPECT_EQ(client.command("MAIL FROM:<a@b>").text, "5.5.1 Nested MAIL command");
  EXPECT_EQ(client.command("DATA").code, 503);
  EXPECT_EQ(client.command("VRFY x").code, 502);
  EXPECT_EQ(client.command("NOOP").code, 250);
  EXPECT_EQ(client.command("RSET").code, 250);
  EXPECT_EQ(client.command("RCPT TO:<a@b>").code, 503);
}

TEST(SupportFakeUpstream, OverridesReplaceNormalReplies) {
  FakeUpstream::Config config;
  config.overrides[SmtpStage::kDataEnd] = StageAction::reply_with("451 4.3.0 Try later");
  config.rcpt_overrides["Bad@Example.net"] = StageAction::reply_with("550 5.1.1 No such user");
  config.ehlo_lines = {"custom.upstream", "SIZE 1000"};
  FakeUpstream upstream(config);
  SmtpTestClient client(2s);
  client.connect(upstream.host(), upstream.port());
  ASSERT_EQ(client.read_reply().code, 220);
  EXPECT_EQ(client.command("EHLO relay.test").raw, "250-custom.upstream\r\n250 SIZE 1000\r\n");
  SmtpReply done = client.send_message("a@b", {"bad@example.net", "good@example.net"}, "x\r\n");
  EXPECT_EQ(done.code, 451);
  EXPECT_EQ(done.text, "4.3.0 Try later");
  EXPECT_EQ(client.command("MAIL FROM:<a@b>").code, 250);
  EXPECT_EQ(client.command("RCPT TO:<bad@example.net>").text, "5.1.1 No such user");
  EXPECT_EQ(client.command("RCPT TO:<good@example.net>").code, 250);
  // A rejected message is not an accepted transaction.
  EXPECT_TRUE(upstream.transactions().empty());

  upstream.set_override(SmtpStage::kMail,
                        StageAction::reply_with("452-4.3.1 Full\n452 4.3.1 Really"));
  EXPECT_EQ(client.command("RSET").code, 250);
  SmtpReply mail = client.command("MAIL FROM:<a@b>");
  EXPECT_EQ(mail.raw, "452-4.3.1 Full\r\n452 4.3.1 Really\r\n");
}

TEST(SupportFakeUpstream, OverrideExpiresAfterGivenUses) {
  FakeUpstream::Config config;
  config.overrides[SmtpStage::kGreeting] =
      StageAction::reply_with("421 4.3.2 Busy, try later").only(1);
  FakeUpstream upstream(config);
  SmtpTestClient client(2s);
  client.connect(upstream.host(), upstream.port());
  EXPECT_EQ(client.read_reply().code, 421);
  EXPECT_TRUE(client.closed());  // 421 means the server closes
  client.connect(upstream.host(), upstream.port());
  EXPECT_EQ(client.read_reply().code, 220);
  EXPECT_EQ(upstream.connection_count(), 2u);
}

TEST(SupportFakeUpstream, CloseOverrideDropsConnectionWithoutReply) {
  FakeUpstream::Config config;
  config.overrides[SmtpStage::kData] = StageAction::close_connection();
  FakeUpstream upstream(config);
  SmtpTestClient client(2s);
  connect_and_ehlo(client, upstream);
  EXPECT_EQ(client.command("MAIL FROM:<a@b>").code, 250);
  EXPECT_EQ(client.command("RCPT TO:<c@d>").code, 250);
  client.send_line("DATA");
  EXPECT_TRUE(client.closed());
  EXPECT_THROW(client.read_reply(), SmtpTestError);
  EXPECT_TRUE(upstream.wait_for_idle(1s));
}

TEST(SupportFakeUpstream, DelayedReplyArrivesAfterDelay) {
  FakeUpstream::Config config;
  config.overrides[SmtpStage::kEhlo] = StageAction::delayed(300ms, "250 slow.upstream");
  FakeUpstream upstream(config);
  SmtpTestClient client(100ms);
  client.connect(upstream.host(), upstream.port());
  ASSERT_EQ(client.read_reply().code, 220);
  auto start = Clock::now();
  client.send_line("EHLO relay.test");
  EXPECT_THROW(client.read_reply(), SmtpTestError);  // a 100 ms timeout fires first
  client.set_timeout(2s);
  SmtpReply reply = client.read_reply();
  EXPECT_GE(elapsed_ms(start), 300);
  EXPECT_EQ(reply.text, "slow.upstream");
}

TEST(SupportFakeUpstream, LateAndMissingGreeting) {
  FakeUpstream::Config late;
  late.greeting_delay = 200ms;
  FakeUpstream late_upstream(late);
  SmtpTestClient client(2s);
  auto start = Clock::now();
  client.connect(late_upstream.host(), late_upstream.port());
  EXPECT_EQ(client.read_reply().code, 220);
  EXPECT_GE(elapsed_ms(start), 200);

  FakeUpstream::Config mute;
  mute.send_greeting = false;
  FakeUpstream mute_upstream(mute);
  client.set_timeout(200ms);
  client.connect(mute_upstream.host(), mute_upstream.port());
  EXPECT_THROW(client.read_reply(), SmtpTestError);
}

TEST(SupportFakeUpstream, HangingServerStopsPromptly) {
  SmtpTestClient client(200ms);
  auto upstream = std::make_unique<FakeUpstream>();
  upstream->set_override(SmtpStage::kMail, StageAction::hang());
  connect_and_ehlo(client, *upstream);
  client.send_line("MAIL FROM:<a@b>");
  EXPECT_THROW(client.read_reply(), SmtpTestError);
  auto start = Clock::now();
  upstream.reset();
  EXPECT_LT(elapsed_ms(start), 500);
  EXPECT_TRUE(client.closed(500ms));
}

TEST(SupportFakeUpstream, ServesConcurrentConnections) {
  FakeUpstream upstream;
  SmtpTestClient first(2s);
  SmtpTestClient second(2s);
  connect_and_ehlo(first, upstream);
  connect_and_ehlo(second, upstream);
  EXPECT_EQ(second.send_message("two@x", {"r@y"}, "2\r\n").code, 250);
  EXPECT_EQ(first.send_message("one@x", {"r@y"}, "1\r\n").code, 250);
  EXPECT_TRUE(upstream.wait_for_connections(2, 1s));
  EXPECT_EQ(upstream.open_connections(), 2u);
  auto transactions = upstream.transactions();
  ASSERT_EQ(transactions.size(), 2u);
  EXPECT_EQ(transactions[0].mail_from, "two@x");
  EXPECT_EQ(transactions[0].connection, 1u);
  EXPECT_EQ(transactions[1].connection, 0u);
}

TEST(SupportBlockedPorts, BlackholeConnectDoesNotComplete) {
  BlackholePort blackhole;
  auto start = Clock::now();
  ConnectOutcome outcome = connect_with_timeout(blackhole.host(), blackhole.port(), 300ms);
  EXPECT_EQ(outcome.result, ConnectResult::kTimedOut);
  EXPECT_GE(elapsed_ms(start), 300);
}

TEST(SupportBlockedPorts, BlackholeWorksOnIpv6Loopback) {
  try {
    make_address("::1", 0);
    UniqueFd probe = listen_ephemeral("::1", 1, nullptr);
  } catch (const std::exception&) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  BlackholePort blackhole("::1");
  EXPECT_EQ(connect_with_timeout("::1", blackhole.port(), 300ms).result, ConnectResult::kTimedOut);
}

TEST(SupportBlockedPorts, RefusedPortRefusesAtOnce) {
  uint16_t port = refused_port();
  ASSERT_NE(port, 0);
  auto start = Clock::now();
  ConnectOutcome outcome = connect_with_timeout("127.0.0.1", port, 1s);
  EXPECT_EQ(outcome.result, ConnectResult::kRefused);
  EXPECT_EQ(outcome.error, ECONNREFUSED);
  EXPECT_LT(elapsed_ms(start), 100);
}

// TLS: one self-signed certificate (CN/SAN localhost, IP 127.0.0.1), made by the openssl CLI.
class SupportFakeUpstreamTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("support-tls");
    std::string command =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
        " -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1"
        " -keyout " +
        dir_->file("key.pem") + " -out " + dir_->file("cert.pem") + " >" +
        dir_->file("openssl.log") + " 2>&1";
    ASSERT_EQ(std::system(command.c_str()), 0) << "openssl CLI failed";
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static FakeUpstream::Config tls_config() {
    FakeUpstream::Config config;
    config.cert_file = dir_->file("cert.pem");
    config.key_file = dir_->file("key.pem");
    config.offer_starttls = true;
    config.auth_mechanisms = {"PLAIN", "LOGIN"};
    config.auth_username = "user";
    config.auth_password = "s3cret";
    return config;
  }
  static TlsClientOptions client_options() { return {dir_->file("cert.pem"), "localhost"}; }

  static TempDir* dir_;
};

TempDir* SupportFakeUpstreamTls::dir_ = nullptr;

TEST_F(SupportFakeUpstreamTls, StartTlsThenAuthPlainThenMessage) {
  FakeUpstream upstream(tls_config());
  SmtpTestClient client(2s);
  client.connect(upstream.host(), upstream.port());
  ASSERT_EQ(client.read_reply().code, 220);
  SmtpReply plain_ehlo = client.command("EHLO relay.test");
  EXPECT_EQ(plain_ehlo.lines.back(), "STARTTLS");  // no AUTH before TLS
  EXPECT_EQ(client.command("AUTH PLAIN " + base64_encode(std::string("\0user\0s3cret", 12))).code,
            538);
  EXPECT_EQ(client.starttls(client_options()).text, "2.0.0 Ready to start TLS");
  ASSERT_TRUE(client.is_tls());
  SmtpReply tls_ehlo = client.command("EHLO relay.test");
  EXPECT_EQ(tls_ehlo.lines.back(), "AUTH PLAIN LOGIN");
  EXPECT_EQ(std::count(tls_ehlo.lines.begin(), tls_ehlo.lines.end(), "STARTTLS"), 0);
  SmtpReply auth = client.command("AUTH PLAIN " + base64_encode(std::string("\0user\0s3cret", 12)));
  EXPECT_EQ(auth.code, 235);
  EXPECT_EQ(client.send_message("a@b", {"c@d"}, "secret\r\n").code, 250);

  auto transactions = upstream.transactions();
  ASSERT_EQ(transactions.size(), 1u);
  EXPECT_TRUE(transactions[0].tls);
  EXPECT_EQ(transactions[0].auth_user, "user");
  auto attempts = upstream.auth_attempts();
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].mechanism, "PLAIN");
  EXPECT_EQ(attempts[0].username, "user");
  EXPECT_EQ(attempts[0].password, "s3cret");
  EXPECT_TRUE(attempts[0].success);
  EXPECT_TRUE(attempts[0].tls);
}

TEST_F(SupportFakeUpstreamTls, AuthLoginWithWrongPasswordIsRejected) {
  FakeUpstream::Config config = tls_config();
  config.implicit_tls = true;
  config.offer_starttls = false;
  config.require_auth = true;
  FakeUpstream upstream(config);
  SmtpTestClient client(2s);
  client.connect_tls(upstream.host(), upstream.port(), client_options());
  ASSERT_EQ(client.read_reply().code, 220);
  ASSERT_EQ(client.command("EHLO relay.test").code, 250);
  EXPECT_EQ(client.command("MAIL FROM:<a@b>").text, "5.7.0 Authentication required");
  EXPECT_EQ(client.command("AUTH LOGIN").text, "VXNlcm5hbWU6");
  EXPECT_EQ(client.command(base64_encode("user")).text, "UGFzc3dvcmQ6");
  SmtpReply reply = client.command(base64_encode("wrong"));
  EXPECT_EQ(reply.code, 535);
  EXPECT_EQ(reply.text, "5.7.8 Authentication credentials invalid");
  auto attempts = upstream.auth_attempts();
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].mechanism, "LOGIN");
  EXPECT_EQ(attempts[0].password, "wrong");
  EXPECT_FALSE(attempts[0].success);
}

TEST_F(SupportFakeUpstreamTls, InjectionArrivesAsPlaintextAfterThe220) {
  FakeUpstream::Config config = tls_config();
  config.starttls_injection = true;
  FakeUpstream upstream(config);
  SmtpTestClient client(2s);
  connect_and_ehlo(client, upstream);
  SmtpReply ready = client.command("STARTTLS");
  EXPECT_EQ(ready.code, 220);
  SmtpReply injected = client.read_reply();  // what a vulnerable client would act on
  EXPECT_EQ(injected.raw, "250 injected\r\n");
}

TEST_F(SupportFakeUpstreamTls, StartTlsDiscardsInjectedAndPipelinedPlaintext) {
  FakeUpstream::Config config = tls_config();
  config.starttls_injection = true;
  FakeUpstream upstream(config);
  SmtpTestClient client(2s);
  connect_and_ehlo(client, upstream);
  client.starttls(client_options());  // drops "250 injected" on the client side
  SmtpReply ehlo = client.command("EHLO relay.test");
  EXPECT_EQ(ehlo.lines.front(), "fake.upstream");
  client.close();

  // Server side: a command pipelined behind STARTTLS is dropped, not run inside TLS.
  SmtpTestClient pipelining(2s);
  connect_and_ehlo(pipelining, upstream);
  pipelining.send_raw("STARTTLS\r\nMAIL FROM:<evil@x>\r\n");
  EXPECT_EQ(pipelining.read_reply().code, 220);
  EXPECT_EQ(upstream.commands(1), (std::vector<std::string>{"EHLO relay.test", "STARTTLS"}));
}

TEST_F(SupportFakeUpstreamTls, ClientRejectsCertificateForOtherHost) {
  FakeUpstream::Config config = tls_config();
  config.implicit_tls = true;
  FakeUpstream upstream(config);
  SmtpTestClient client(2s);
  EXPECT_THROW(client.connect_tls(upstream.host(), upstream.port(),
                                  {dir_->file("cert.pem"), "other.example"}),
               SmtpTestError);
  client.close();
  ASSERT_TRUE(upstream.wait_for_idle(1s));
  EXPECT_EQ(upstream.tls_failures().size(), 1u);
  // The IP SAN matches, so the same certificate is accepted for 127.0.0.1.
  client.connect_tls(upstream.host(), upstream.port(), {dir_->file("cert.pem"), "127.0.0.1"});
  EXPECT_EQ(client.read_reply().code, 220);
}

}  // namespace
}  // namespace portrelay::test
