// Less travelled paths: upstream sessions reused across messages, clients that vanish while
// the relay works for them, failovers counted across stages, error limits.
#include "relay_harness.hpp"
#include "support/blocked_ports.hpp"

namespace portrelay::test {
namespace {

std::string label(const std::string& name, std::uint16_t port) {
  return name + ":" + std::to_string(port);
}

TEST(RelayEdgeCases, SecondMessageAfterUpstreamRefusedDataCommand) {
  // 554 to DATA leaves MAIL and RCPT open on the upstream: the relay must clear them (RSET)
  // before the next transaction on the same upstream session.
  FakeUpstream upstream(
      {.overrides = {{SmtpStage::kData, StageAction::reply_with("554 5.7.1 Not now").only(1)}}});
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply first = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(first.code, 554) << first.raw;
  SmtpReply second =
      client->send_message("c@example.test", {"d@example.test"}, sample_message("second"));
  EXPECT_EQ(second.code, 250) << second.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream.transactions()[0].mail_from, "c@example.test");
  EXPECT_EQ(upstream.transactions()[0].rcpt_to, std::vector<std::string>{"d@example.test"});
}

TEST(RelayEdgeCases, UpstreamClosingAnIdleReusedSessionDoesNotDeferTheNextMessage) {
  // The kept upstream session dies between two messages (provider idle timeout). With a
  // single endpoint that still accepts new connections, the next message must get through.
  FakeUpstream upstream;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  EXPECT_EQ(client->send_message("a@example.test", {"b@example.test"}, sample_message()).code, 250);
  // The next MAIL on the old connection makes the upstream hang up without a reply, as if
  // its idle close crossed our command.
  upstream.set_override(SmtpStage::kMail, StageAction::close_connection().only(1));
  SmtpReply reply =
      client->send_message("c@example.test", {"d@example.test"}, sample_message("second"));
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(2, 2s));
  EXPECT_EQ(upstream.transactions()[1].mail_from, "c@example.test");
}

TEST(RelayEdgeCases, PipelinedNextMessageAfterUpstreamRefusedDataCommand) {
  FakeUpstream upstream(
      {.overrides = {{SmtpStage::kData, StageAction::reply_with("554 5.7.1 Not now").only(1)}}});
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  begin_data(*client);
  client->send_raw(sample_message() +
                   ".\r\nMAIL FROM:<c@example.test>\r\nRCPT TO:<d@example.test>\r\nDATA\r\n");
  EXPECT_EQ(client->read_reply().code, 554);
  SmtpReply mail = client->read_reply();
  EXPECT_EQ(mail.code, 250) << mail.raw;
  EXPECT_EQ(client->read_reply().code, 250);
  EXPECT_EQ(client->read_reply().code, 354);
  client->send_raw(sample_message("second") + ".\r\n");
  EXPECT_EQ(client->read_reply().code, 250);
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream.transactions()[0].mail_from, "c@example.test");
}

TEST(RelayEdgeCases, UpstreamIdle421BetweenMessagesIsHandled) {
  // A kept session that answers the next command with 421 (idle timeout): the next message
  // opens a fresh upstream session instead of failing.
  FakeUpstream upstream;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  EXPECT_EQ(client->send_message("a@example.test", {"b@example.test"}, sample_message()).code, 250);
  upstream.set_override(SmtpStage::kMail,
                        StageAction::reply_with("421 4.4.2 Idle timeout, closing").only(1));
  SmtpReply reply =
      client->send_message("c@example.test", {"d@example.test"}, sample_message("second"));
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(2, 2s));
  EXPECT_EQ(upstream.connection_count(), 2u);
}

TEST(RelayEdgeCases, FailoverFromMailFailureAcrossDeadEndpointIsCounted) {
  // A answers 421 at MAIL, B refuses connections, C works: the message moved A -> B -> C.
  FakeUpstream a({.overrides = {{SmtpStage::kMail, StageAction::reply_with("421 4.3.2 Bye")}}});
  RefusedPort b;
  FakeUpstream c;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", a.port()), plain_upstream("b", b.port()),
                        plain_upstream("c", c.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->send_message("x@example.test", {"y@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  std::string metrics = relay.metrics_text();
  EXPECT_EQ(metric_value(metrics, "portrelay_failovers_total",
                         {{"from", label("b", b.port())}, {"to", label("c", c.port())}}),
            1)
      << metrics;
  EXPECT_EQ(metric_value(metrics, "portrelay_failovers_total",
                         {{"from", label("a", a.port())}, {"to", label("b", b.port())}}),
            1)
      << metrics;
}

TEST(RelayEdgeCases, ClientVanishingWhileTheRelayConnectsLeavesTheRelayHealthy) {
  BlackholePort blackhole;
  FakeUpstream upstream;
  RelaySettings settings;
  settings.connect_timeout = "300ms";
  settings.upstreams = {plain_upstream("hole", blackhole.port()),
                        plain_upstream("good", upstream.port())};
  RelayUnderTest relay(settings);
  {
    auto client = relay.client();
    client->send_line("MAIL FROM:<a@example.test>");
    std::this_thread::sleep_for(50ms);  // the relay is now waiting on the black hole
  }                                     // client gone
  std::this_thread::sleep_for(400ms);   // past the connect timeout of the abandoned attempt
  auto client = relay.client();
  SmtpReply reply = client->send_message("c@example.test", {"d@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream.transactions().size(), 1u);
  EXPECT_EQ(upstream.transactions()[0].mail_from, "c@example.test");
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (relay.metric("portrelay_client_sessions_active") != 1 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(relay.metric("portrelay_client_sessions_active"), 1);
}

TEST(RelayEdgeCases, ClientVanishingWhileUpstreamAnswersSlowly) {
  FakeUpstream upstream(
      {.overrides = {{SmtpStage::kMail, StageAction::delayed(300ms, "250 2.1.0 Ok").only(1)}}});
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  {
    auto client = relay.client();
    client->send_line("MAIL FROM:<a@example.test>");
    std::this_thread::sleep_for(50ms);
  }
  std::this_thread::sleep_for(400ms);
  auto client = relay.client();
  EXPECT_EQ(client->send_message("c@example.test", {"d@example.test"}, sample_message()).code, 250);
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  // The abandoned upstream session was ended politely and holds no transaction.
  EXPECT_EQ(upstream.transactions().size(), 1u);
  EXPECT_EQ(upstream.transactions()[0].connection, 1u);
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (upstream.open_connections() > 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(upstream.open_connections(), 1u);
  auto abandoned = upstream.commands(0);
  ASSERT_FALSE(abandoned.empty());
  EXPECT_EQ(abandoned.back(), "QUIT");
}

TEST(RelayEdgeCases, ClientVanishingAfterTheFinalDotWhileUpstreamAnswersSlowly) {
  // The session (and its relay) is freed while the upstream still owes the reply to the
  // message; that late reply must not call back into the freed relay (ASan: use after free).
  FakeUpstream upstream(
      {.overrides = {{SmtpStage::kDataEnd,
                      StageAction::delayed(300ms, "250 2.0.0 Ok: queued late").only(1)}}});
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  {
    auto client = relay.client();
    EXPECT_EQ(client->command("MAIL FROM:<a@example.test>").code, 250);
    EXPECT_EQ(client->command("RCPT TO:<b@example.test>").code, 250);
    EXPECT_EQ(client->command("DATA").code, 354);
    client->send_raw(sample_message() + ".\r\n");
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  std::this_thread::sleep_for(400ms);  // the late 250 has arrived by now
  auto client = relay.client();
  EXPECT_EQ(client->send_message("c@example.test", {"d@example.test"}, sample_message()).code, 250);
  ASSERT_TRUE(upstream.wait_for_transactions(2, 2s));
  EXPECT_EQ(upstream.transactions()[1].mail_from, "c@example.test");
  // Nobody heard the first 250, so it is not counted as relayed.
  EXPECT_EQ(relay.metric("portrelay_messages_total", {{"result", "relayed"}}), 1);
}

TEST(RelayEdgeCases, ClientQuitEndsTheUpstreamSessionWithQuitWhenNotPooled) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.relay_extra = "pool_max_per_endpoint = 0\n";
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  EXPECT_EQ(client->send_message("a@example.test", {"b@example.test"}, sample_message()).code, 250);
  EXPECT_EQ(client->command("QUIT").code, 221);
  ASSERT_TRUE(upstream.wait_for_idle(2s));
  auto commands = upstream.commands(0);
  ASSERT_FALSE(commands.empty());
  EXPECT_EQ(commands.back(), "QUIT");
}

TEST(RelayEdgeCases, TooManyErrorsCloseTheSession) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  for (int i = 0; i < 9; ++i) EXPECT_EQ(client->command("BOGUS").code, 500);
  SmtpReply last = client->command("BOGUS");
  EXPECT_EQ(last.code, 500) << last.raw;
  SmtpReply closing = client->read_reply();
  EXPECT_EQ(closing.code, 421) << closing.raw;
  EXPECT_TRUE(client->closed(2s));
}

TEST(RelayEdgeCases, HeloClientIsServed) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  SmtpTestClient client(5s);
  client.connect("127.0.0.1", relay.port());
  EXPECT_EQ(client.read_reply().code, 220);
  EXPECT_EQ(client.command("HELO old.client").code, 250);
  EXPECT_EQ(client.send_message("a@example.test", {"b@example.test"}, sample_message()).code, 250);
}

TEST(RelayEdgeCases, EightBitBodyToUpstreamWithout8BitMimeIsNotSentAsIs) {
  // RFC 6152 3: a relay must not pass 8-bit content to a server that did not offer 8BITMIME.
  FakeUpstream upstream({.ehlo_lines = {"fake.upstream", "PIPELINING", "ENHANCEDSTATUSCODES"}});
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  // The only endpoint cannot take 8-bit content unchanged and portrelay does not convert,
  // so the client hears it at MAIL, before it sends the body.
  SmtpReply reply = client->command("MAIL FROM:<a@example.test> BODY=8BITMIME");
  EXPECT_EQ(reply.code, 554) << reply.raw;
  EXPECT_NE(reply.text.find("5.6.3"), std::string::npos) << reply.raw;
  // A 7-bit message from the same client still goes through.
  EXPECT_EQ(client->send_message("a@example.test", {"b@example.test"}, sample_message()).code, 250);
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  for (const auto& transaction : upstream.transactions())
    EXPECT_EQ(transaction.raw_data.find('\xc3'), std::string::npos);
  for (const auto& commands : upstream.all_commands())
    for (const auto& command : commands)
      EXPECT_EQ(command.find("8BITMIME"), std::string::npos) << command;
}

}  // namespace
}  // namespace portrelay::test

namespace portrelay::test {
namespace {

// One endpoint that dies (421) in the middle of the recipients: the envelope cannot move
// anywhere, so the client gets 4xx; what it does next must not hurt the relay.
class RelayEndpointLostMidEnvelope : public ::testing::Test {
 protected:
  RelayEndpointLostMidEnvelope() {
    upstream_.set_rcpt_override("second@example.test",
                                StageAction::reply_with("421 4.3.2 Shutting down"));
    RelaySettings settings;
    settings.upstreams = {plain_upstream("a", upstream_.port())};
    relay_ = std::make_unique<RelayUnderTest>(settings);
    client_ = relay_->client();
    EXPECT_EQ(client_->command("MAIL FROM:<a@example.test>").code, 250);
    EXPECT_EQ(client_->command("RCPT TO:<first@example.test>").code, 250);
    SmtpReply lost = client_->command("RCPT TO:<second@example.test>");
    EXPECT_EQ(lost.code, 451) << lost.raw;
  }
  // The relay still answers a new client.
  void expect_relay_alive() {
    auto other = relay_->client(2s);
    EXPECT_EQ(other->command("NOOP").code, 250);
  }

  FakeUpstream upstream_;
  std::unique_ptr<RelayUnderTest> relay_;
  std::unique_ptr<SmtpTestClient> client_;
};

TEST_F(RelayEndpointLostMidEnvelope, AnotherRcptGets4xx) {
  SmtpReply reply = client_->command("RCPT TO:<third@example.test>");
  EXPECT_EQ(reply.code / 100, 4) << reply.raw;
  expect_relay_alive();
}

TEST_F(RelayEndpointLostMidEnvelope, DataWithTheAcceptedRecipientGets4xx) {
  EXPECT_EQ(client_->command("DATA").code, 354);
  client_->send_raw(sample_message() + ".\r\n");
  SmtpReply reply = client_->read_reply();
  EXPECT_EQ(reply.code / 100, 4) << reply.raw;
  expect_relay_alive();
}

TEST_F(RelayEndpointLostMidEnvelope, RsetAndANewMessageWorkOnceTheEndpointIsBack) {
  EXPECT_EQ(client_->command("RSET").code, 250);
  upstream_.set_rcpt_override("second@example.test", StageAction::reply_with("250 2.1.5 Ok"));
  SmtpReply reply =
      client_->send_message("a@example.test", {"second@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  expect_relay_alive();
}

}  // namespace
}  // namespace portrelay::test

namespace portrelay::test {
namespace {

// An endpoint that cannot carry 8-bit content unchanged is passed over for an 8BITMIME
// message, without counting as a failure, and the next endpoint that can takes it.
TEST(RelayEightBit, EightBitMessageGoesToTheEndpointThatOffers8BitMime) {
  FakeUpstream seven_bit({.ehlo_lines = {"seven.upstream", "PIPELINING", "ENHANCEDSTATUSCODES"}});
  FakeUpstream eight_bit;  // default EHLO offers 8BITMIME
  RelaySettings settings;
  settings.upstreams = {plain_upstream("seven", seven_bit.port()),
                        plain_upstream("eight", eight_bit.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  EXPECT_EQ(client->command("MAIL FROM:<a@example.test> BODY=8BITMIME").code, 250);
  EXPECT_EQ(client->command("RCPT TO:<b@example.test>").code, 250);
  EXPECT_EQ(client->command("DATA").code, 354);
  client->send_raw("Subject: 8bit\r\n\r\ncaf\xc3\xa9\r\n.\r\n");
  SmtpReply reply = client->read_reply();
  EXPECT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via eight:"), std::string::npos) << reply.raw;
  ASSERT_TRUE(eight_bit.wait_for_transactions(1, 2s));
  EXPECT_EQ(eight_bit.transactions().at(0).content, "Subject: 8bit\r\n\r\ncaf\xc3\xa9\r\n");
  EXPECT_TRUE(seven_bit.transactions().empty());
  EXPECT_EQ(metric_value(relay.metrics_text(), "portrelay_upstream_connect_failures_total",
                         {{"upstream", "seven"}}),
            0);
}

}  // namespace
}  // namespace portrelay::test
