// Sender identity over real sockets: [rewrite] and [aliases] at acceptance (what the
// upstream receives), and an [[upstream]]'s own identity applied per endpoint, including
// the replay of a message onto the next provider after a failure.
#include "portrelay/base/log.hpp"
#include "relay_harness.hpp"
#include "support/blocked_ports.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::test {
namespace {

constexpr const char* kCronMessage =
    "From: Cron Daemon <root@vm-1234.internal>\r\n"
    "To: root\r\n"
    "Subject: Cron <root@vm-1234> run-parts /etc/cron.daily\r\n"
    "\r\n"
    "x\r\n";

std::string header_of(const std::string& content) {
  return content.substr(0, content.find("\r\n\r\n") + 2);
}

// The relay's configuration with vm-1234.internal as this machine's domain, `rewrite`
// lines in [rewrite] and other `tables` after it.
std::string with_tables(const RelaySettings& settings, const std::string& rewrite,
                        const std::string& tables = "") {
  return settings.toml() + "\n[rewrite]\nlocal_domains = [\"vm-1234.internal\"]\n" + rewrite +
         tables;
}

RelaySettings local_host(std::vector<std::string> upstreams) {
  RelaySettings settings;
  settings.upstreams = std::move(upstreams);
  settings.add_missing_headers = true;  // the default outside the test harness
  return settings;
}

TEST(IdentityRewrite, CronMailLeavesWithTheVerifiedIdentityAndQualifiedHeaders) {
  FakeUpstream upstream;
  RelayUnderTest relay(with_tables(local_host({plain_upstream("ses", upstream.port())}),
                                   "sender = \"alerts@example.com\"\n",
                                   "[aliases]\nroot = \"ops@example.com\"\n"));
  auto client = relay.client();
  log::set_enabled(true);
  testing::internal::CaptureStderr();
  const SmtpReply reply =
      client->send_message("root@vm-1234.internal", {"ops@example.com"}, kCronMessage);
  const std::string log_text = testing::internal::GetCapturedStderr();
  log::set_enabled(false);
  ASSERT_EQ(reply.code, 250) << reply.raw;
  // The message line shows the sender as given and as sent.
  EXPECT_NE(log_text.find("from=alerts@example.com original_from=root@vm-1234.internal"),
            std::string::npos)
      << log_text;
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  const auto sent = upstream.transactions().at(0);
  EXPECT_EQ(sent.mail_from, "alerts@example.com");
  const std::string header = header_of(sent.content);
  EXPECT_NE(header.find("From: Cron Daemon <alerts@example.com>\r\n"), std::string::npos) << header;
  EXPECT_NE(header.find("To: ops@example.com\r\n"), std::string::npos) << header;
  // The original author, mapped to where its mail goes, is the Reply-To.
  EXPECT_NE(header.find("Reply-To: Cron Daemon <ops@example.com>\r\n"), std::string::npos)
      << header;
  EXPECT_NE(header.find("\r\nDate: "), std::string::npos) << header;
  EXPECT_NE(header.find("\r\nMessage-ID: <"), std::string::npos) << header;
  EXPECT_EQ(sent.content.substr(sent.content.size() - 5), "\r\nx\r\n");
  EXPECT_EQ(relay.metric("portrelay_from_rewrites_total", {{"stage", "accept"}}), 1);
  EXPECT_EQ(relay.metric("portrelay_dkim_signatures_broken_total"), 0);
}

TEST(IdentityRewrite, MailThatNeedsNothingArrivesByteForByte) {
  FakeUpstream upstream;
  RelaySettings settings = local_host({plain_upstream("ses", upstream.port())});
  RelayUnderTest relay(with_tables(settings, "sender = \"alerts@example.com\"\n"));
  auto client = relay.client();
  const std::string message =
      "From: App <app@example.org>\r\nTo: someone@example.net\r\nDate: Tue, 1 Jul 2025 "
      "12:00:00 +0000\r\nMessage-ID: <1@example.org>\r\nSubject: s\r\n\r\nbody\r\n";
  ASSERT_EQ(client->send_message("app@example.org", {"someone@example.net"}, message).code, 250);
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream.transactions().at(0).mail_from, "app@example.org");
  EXPECT_EQ(upstream.transactions().at(0).content, message);
  EXPECT_EQ(relay.metric("portrelay_from_rewrites_total"), 0);
}

TEST(IdentityRewrite, AddMissingHeadersCanBeTurnedOff) {
  FakeUpstream upstream;
  RelaySettings settings = local_host({plain_upstream("ses", upstream.port())});
  settings.add_missing_headers = false;
  RelayUnderTest relay(with_tables(settings, ""));
  auto client = relay.client();
  const std::string message = "Subject: bare\r\n\r\nbody\r\n";
  ASSERT_EQ(client->send_message("app@example.org", {"someone@example.net"}, message).code, 250);
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream.transactions().at(0).content, message);
}

TEST(IdentityRewrite, NullSenderIsNeverRewrittenAndDkimBreakageIsCounted) {
  FakeUpstream upstream;
  RelayUnderTest relay(with_tables(local_host({plain_upstream("ses", upstream.port())}),
                                   "from = \"VM <alerts@example.com>\"\n"
                                   "sender = \"alerts@example.com\"\n"));
  auto client = relay.client();
  const std::string message =
      "DKIM-Signature: v=1; a=rsa-sha256; d=vm-1234.internal; s=x;\r\n h=from:to:subject; "
      "bh=abc; b=def\r\nFrom: root@vm-1234.internal\r\nSubject: s\r\n\r\nbody\r\n";
  ASSERT_EQ(client->send_message("", {"someone@example.net"}, message).code, 250);
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  const auto sent = upstream.transactions().at(0);
  EXPECT_EQ(sent.mail_from, "");
  // The From is local, so it is rewritten even for a null sender; the signature breaks.
  EXPECT_NE(sent.content.find("\r\nFrom: VM <alerts@example.com>\r\n"), std::string::npos)
      << sent.content;
  EXPECT_EQ(relay.metric("portrelay_dkim_signatures_broken_total", {{"stage", "accept"}}), 1);
}

// SendGrid, then Mailgun: each provider sees the identity verified there.
std::string sendgrid(std::uint16_t port) {
  return plain_upstream("sendgrid", port,
                        "sender = \"bounce@sg.example.com\"\n"
                        "from = \"Alerts <alerts@sg.example.com>\"\n");
}
std::string mailgun(std::uint16_t port) {
  return plain_upstream("mailgun", port, "sender = \"alerts@mg.example.com\"\n");
}

TEST(UpstreamIdentity, FirstProviderDownSecondSendsAsItsOwnIdentity) {
  RefusedPort down;
  FakeUpstream second;
  RelayUnderTest relay(
      with_tables(local_host({sendgrid(down.port()), mailgun(second.port())}), ""));
  auto client = relay.client();
  ASSERT_EQ(client->send_message("root@vm-1234.internal", {"ops@example.com"}, kCronMessage).code,
            250);
  ASSERT_TRUE(second.wait_for_transactions(1, 2s));
  const auto sent = second.transactions().at(0);
  EXPECT_EQ(sent.mail_from, "alerts@mg.example.com");
  EXPECT_NE(sent.content.find("From: Cron Daemon <alerts@mg.example.com>\r\n"), std::string::npos)
      << sent.content;
  EXPECT_NE(sent.content.find("Reply-To: Cron Daemon <root@vm-1234.internal>\r\n"),
            std::string::npos)
      << sent.content;
  EXPECT_EQ(relay.metric("portrelay_from_rewrites_total", {{"stage", "upstream"}}), 1);
}

TEST(UpstreamIdentity, ReplayAfterAFailureAtEndOfDataCarriesTheNextProvidersIdentity) {
  FakeUpstream first;
  FakeUpstream second;
  first.set_override(SmtpStage::kDataEnd, StageAction::reply_with("451 4.3.0 try elsewhere"));
  RelayUnderTest relay(
      with_tables(local_host({sendgrid(first.port()), mailgun(second.port())}), ""));
  auto client = relay.client();
  ASSERT_EQ(client->send_message("root@vm-1234.internal", {"ops@example.com"}, kCronMessage).code,
            250);
  ASSERT_TRUE(second.wait_for_transactions(1, 2s));
  // The first provider got its own identity, envelope and header, before it failed.
  const auto first_commands = first.all_commands();
  bool saw_sendgrid_mail = false;
  for (const auto& connection : first_commands)
    for (const auto& line : connection)
      if (line.rfind("MAIL FROM:<bounce@sg.example.com>", 0) == 0) saw_sendgrid_mail = true;
  EXPECT_TRUE(saw_sendgrid_mail);
  const auto sent = second.transactions().at(0);
  EXPECT_EQ(sent.mail_from, "alerts@mg.example.com");
  EXPECT_NE(sent.content.find("From: Cron Daemon <alerts@mg.example.com>\r\n"), std::string::npos)
      << sent.content;
  EXPECT_EQ(sent.content.find("sg.example.com"), std::string::npos) << sent.content;
}

TEST(UpstreamIdentity, RemoteSendersPassUnlessAllSenders) {
  FakeUpstream upstream;
  RelayUnderTest relay(with_tables(local_host({sendgrid(upstream.port())}), ""));
  auto client = relay.client();
  const std::string message = "From: app@example.org\r\nSubject: s\r\n\r\nbody\r\n";
  ASSERT_EQ(client->send_message("app@example.org", {"x@example.net"}, message).code, 250);
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream.transactions().at(0).mail_from, "app@example.org");
  EXPECT_NE(upstream.transactions().at(0).content.find("From: app@example.org\r\n"),
            std::string::npos);

  FakeUpstream strict;
  RelayUnderTest one_identity(local_host({plain_upstream(
      "m365", strict.port(), "sender = \"me@example.com\"\nall_senders = true\n")}));
  auto other = one_identity.client();
  ASSERT_EQ(other->send_message("app@example.org", {"x@example.net"}, message).code, 250);
  ASSERT_TRUE(strict.wait_for_transactions(1, 2s));
  EXPECT_EQ(strict.transactions().at(0).mail_from, "me@example.com");
  EXPECT_NE(strict.transactions().at(0).content.find("From: me@example.com\r\n"), std::string::npos)
      << strict.transactions().at(0).content;
}

TEST(UpstreamIdentity, SpoolKeepsTheMessageAsAcceptedAndDeliveryAppliesTheIdentity) {
  TempDir dir;
  FakeUpstream upstream;
  RelaySettings settings = local_host({mailgun(upstream.port())});
  settings.relay_extra = "mode = \"spool\"\n";
  settings.spool = "dir = \"" + dir.path() + "/spool\"\n";
  RelayUnderTest relay(with_tables(settings, "sender = \"alerts@example.com\"\n"));
  auto client = relay.client();
  const SmtpReply reply =
      client->send_message("root@vm-1234.internal", {"ops@example.com"}, kCronMessage);
  ASSERT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(1, 5s));
  const auto sent = upstream.transactions().at(0);
  EXPECT_EQ(sent.mail_from, "alerts@mg.example.com");
  EXPECT_NE(sent.content.find("From: Cron Daemon <alerts@mg.example.com>\r\n"), std::string::npos)
      << sent.content;
  EXPECT_NE(sent.content.find("Reply-To: Cron Daemon <root@vm-1234.internal>\r\n"),
            std::string::npos)
      << sent.content;
}

// Cron's names over SMTP, with no domain: MAIL FROM:<cron> is a local sender ([rewrite]
// gives it the verified identity), RCPT TO:<root> reaches root's alias, and a bare name
// nothing maps is refused at RCPT with 550 5.1.1 and never reaches the provider.
TEST(IdentityRewrite, BareLocalNamesOverSmtpAreMappedOrRefused) {
  FakeUpstream upstream;
  RelayUnderTest relay(with_tables(local_host({plain_upstream("ses", upstream.port())}),
                                   "sender = \"alerts@example.com\"\n",
                                   "[aliases]\nroot = \"ops@example.com\"\n"));
  auto client = relay.client();
  EXPECT_EQ(client->command("MAIL FROM:<cron>").code, 250);
  SmtpReply reply = client->command("RCPT TO:<root>");
  EXPECT_EQ(reply.code, 250) << reply.raw;
  reply = client->command("RCPT TO:<nobody>");
  EXPECT_EQ(reply.code, 550) << reply.raw;
  EXPECT_NE(reply.raw.find("5.1.1"), std::string::npos) << reply.raw;
  // Still a syntax error: nothing but a dot-atom or a quoted string stands alone.
  EXPECT_EQ(client->command("RCPT TO:<ro..ot>").code, 501);
  ASSERT_EQ(client->command("DATA").code, 354);
  client->send_raw(std::string(kCronMessage) + ".\r\n");
  reply = client->read_reply();
  ASSERT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  const auto sent = upstream.transactions().at(0);
  EXPECT_EQ(sent.mail_from, "alerts@example.com");
  EXPECT_EQ(sent.rcpt_to, (std::vector<std::string>{"ops@example.com"}));
  for (const auto& line : upstream.commands(0))
    EXPECT_EQ(line.find("nobody"), std::string::npos) << line;
}

// Without any [aliases], a bare name has nowhere to go: 550 5.1.1 at RCPT.
TEST(IdentityRewrite, ABareRecipientWithoutAliasesIsRefused) {
  FakeUpstream upstream;
  RelayUnderTest relay(local_host({plain_upstream("ses", upstream.port())}));
  auto client = relay.client();
  EXPECT_EQ(client->command("MAIL FROM:<a@example.com>").code, 250);
  const SmtpReply reply = client->command("RCPT TO:<root>");
  EXPECT_EQ(reply.code, 550) << reply.raw;
  EXPECT_NE(reply.raw.find("5.1.1"), std::string::npos) << reply.raw;
}

// A bare sender with no [rewrite] sender still never leaves unqualified: it gets the mail
// domain (/etc/mailname, else the host name), as sendmail gives one.
TEST(IdentityRewrite, ABareSenderWithoutARewriteGetsTheMailDomain) {
  FakeUpstream upstream;
  RelayUnderTest relay(local_host({plain_upstream("ses", upstream.port())}));
  auto client = relay.client();
  const SmtpReply reply = client->send_message("cron", {"b@example.com"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(1, 5s));
  const std::string sent = upstream.transactions().at(0).mail_from;
  EXPECT_EQ(sent.rfind("cron@", 0), 0u) << sent;
  EXPECT_GT(sent.size(), std::string("cron@").size()) << sent;
}

// Qualifying a bare name is not the identity's replacement: allowed_senders still applies
// to it as the client wrote it.
TEST(IdentityRewrite, AQualifiedBareSenderIsStillCheckedAgainstAllowedSenders) {
  FakeUpstream upstream;
  RelaySettings settings = local_host({plain_upstream("ses", upstream.port())});
  settings.server_extra = "allowed_senders = [\"*@example.com\"]";
  RelayUnderTest relay(settings);
  auto client = relay.client();
  const SmtpReply reply = client->command("MAIL FROM:<cron>");
  EXPECT_EQ(reply.code, 550) << reply.raw;
  EXPECT_NE(reply.raw.find("5.7.1"), std::string::npos) << reply.raw;
}

// The spooled settings for the bounce tests: the provider refuses one recipient for good.
RelaySettings spooled_to(const TempDir& dir, FakeUpstream& upstream) {
  upstream.set_rcpt_override("gone@example.net",
                             StageAction::reply_with("550 5.1.1 <gone@example.net>: no such user"));
  RelaySettings settings = local_host({plain_upstream("ses", upstream.port())});
  settings.relay_extra = "mode = \"spool\"\n";
  settings.spool = "dir = \"" + dir.path() + "/spool\"\n";
  return settings;
}

// The bounce of a rewritten message goes to the person behind the local sender (root's
// alias), not to the provider-verified identity [rewrite] put in the envelope. The original
// sender lives in the spool file: the refusal comes after a restart, from the file alone.
TEST(IdentityBounce, ABounceReturnsToTheOriginalLocalSendersAliasAfterARestart) {
  TempDir dir;
  FakeUpstream upstream;
  const std::string config =
      with_tables(spooled_to(dir, upstream), "sender = \"alerts@example.com\"\n",
                  "[aliases]\nroot = \"ops@example.com\"\n");
  upstream.set_override(SmtpStage::kMail, StageAction::reply_with("451 4.3.0 not now"));
  {
    RelayUnderTest relay(config);
    auto client = relay.client();
    ASSERT_EQ(client
                  ->send_message("root@vm-1234.internal", {"ok@example.net", "gone@example.net"},
                                 kCronMessage)
                  .code,
              250);
    std::this_thread::sleep_for(300ms);
    relay.stop();
  }
  ASSERT_EQ(upstream.transactions().size(), 0u);
  upstream.clear_override(SmtpStage::kMail);
  RelayUnderTest relay(config);
  ASSERT_TRUE(relay.daemon().retry_all());
  ASSERT_TRUE(upstream.wait_for_transactions(2, 10s));
  const auto transactions = upstream.transactions();
  EXPECT_EQ(transactions[0].mail_from, "alerts@example.com");
  EXPECT_EQ(transactions[0].rcpt_to, (std::vector<std::string>{"ok@example.net"}));
  const auto& bounce = transactions[1];
  EXPECT_EQ(bounce.mail_from, "");
  EXPECT_EQ(bounce.rcpt_to, (std::vector<std::string>{"ops@example.com"}));
  // Addressed, qualified, to whom it goes; it reports the refused recipient.
  EXPECT_NE(bounce.content.find("To: <ops@example.com>\r\n"), std::string::npos) << bounce.content;
  EXPECT_NE(bounce.content.find("Final-Recipient: rfc822; gone@example.net"), std::string::npos)
      << bounce.content;
}

// No alias for the client's sender: the report goes to the verified identity rather than
// into failed/ (the provider accepts that address; the bare local one it would refuse).
TEST(IdentityBounce, WithoutAnAliasTheBounceGoesToTheVerifiedSender) {
  TempDir dir;
  FakeUpstream upstream;
  RelayUnderTest relay(with_tables(spooled_to(dir, upstream), "sender = \"alerts@example.com\"\n"));
  auto client = relay.client();
  ASSERT_EQ(client
                ->send_message("root@vm-1234.internal", {"ok@example.net", "gone@example.net"},
                               kCronMessage)
                .code,
            250);
  ASSERT_TRUE(upstream.wait_for_transactions(2, 10s));
  const auto bounce = upstream.transactions().at(1);
  EXPECT_EQ(bounce.mail_from, "");
  EXPECT_EQ(bounce.rcpt_to, (std::vector<std::string>{"alerts@example.com"}));
}

}  // namespace
}  // namespace portrelay::test
