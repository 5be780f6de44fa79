// What the client sees, and where the message goes, when the upstream answers 4xx/5xx or
// disappears at each stage of the dialogue.
#include "relay_harness.hpp"

namespace portrelay::test {
namespace {

// Two plaintext upstreams, A preferred; A's behaviour is scripted per test.
class RelayUpstreamReplies : public ::testing::Test {
 protected:
  void start(FakeUpstream::Config a_config, RelaySettings settings = {}) {
    a_ = std::make_unique<FakeUpstream>(std::move(a_config));
    settings.upstreams = {plain_upstream("a", a_->port()), plain_upstream("b", b_.port())};
    relay_ = std::make_unique<RelayUnderTest>(settings);
    client_ = relay_->client();
  }
  static FakeUpstream::Config with(SmtpStage stage, StageAction action) {
    FakeUpstream::Config config;
    config.overrides[stage] = std::move(action);
    return config;
  }
  SmtpReply send() {
    return client_->send_message("sender@example.test", {"rcpt@example.test"}, sample_message());
  }
  double failures(const std::string& upstream, const std::string& reason) {
    return relay_->metric("portrelay_upstream_connect_failures_total",
                          {{"upstream", upstream}, {"reason", reason}});
  }
  // The message reached B exactly once and A not at all.
  void expect_delivered_via_b_only(const SmtpReply& reply) {
    EXPECT_EQ(reply.code, 250) << reply.raw;
    EXPECT_NE(reply.text.find("relayed via b:"), std::string::npos) << reply.raw;
    ASSERT_TRUE(b_.wait_for_transactions(1, 2s));
    std::this_thread::sleep_for(50ms);  // a duplicate would show up now
    ASSERT_EQ(b_.transactions().size(), 1u);
    EXPECT_EQ(b_.transactions()[0].content, sample_message());
    EXPECT_EQ(b_.transactions()[0].rcpt_to, std::vector<std::string>{"rcpt@example.test"});
    EXPECT_TRUE(a_->transactions().empty());
  }
  bool a_saw(const std::string& prefix) {
    for (const auto& commands : a_->all_commands())
      for (const auto& command : commands)
        if (command.rfind(prefix, 0) == 0) return true;
    return false;
  }

  std::unique_ptr<FakeUpstream> a_;
  FakeUpstream b_;
  std::unique_ptr<RelayUnderTest> relay_;
  std::unique_ptr<SmtpTestClient> client_;
};

TEST_F(RelayUpstreamReplies, Greeting421FailsOverToB) {
  start({.greeting = "421 4.3.2 Too busy"});
  expect_delivered_via_b_only(send());
  EXPECT_EQ(failures("a", "greeting_rejected"), 1);
}

TEST_F(RelayUpstreamReplies, Greeting554IsGreetingRejected) {
  start({.greeting = "554 5.7.1 No SMTP service here"});
  expect_delivered_via_b_only(send());
  EXPECT_EQ(failures("a", "greeting_rejected"), 1);
  EXPECT_FALSE(a_saw("EHLO"));
}

TEST_F(RelayUpstreamReplies, SilentGreetingIsGreetingTimeout) {
  RelaySettings settings;
  settings.greeting_timeout = "300ms";
  // One attempt at a time, so A runs into its greeting timeout instead of losing a race.
  settings.relay_extra = "max_parallel = 1\n";
  start({.send_greeting = false}, settings);
  auto started = std::chrono::steady_clock::now();
  expect_delivered_via_b_only(send());
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1500ms);
  EXPECT_EQ(failures("a", "greeting_timeout"), 1);
}

TEST_F(RelayUpstreamReplies, Ehlo421FailsOver) {
  start(with(SmtpStage::kEhlo, StageAction::reply_with("421 4.3.2 Shutting down")));
  expect_delivered_via_b_only(send());
  EXPECT_EQ(failures("a", "closed"), 1);
}

TEST_F(RelayUpstreamReplies, Mail421FailsOverToB) {
  start(with(SmtpStage::kMail, StageAction::reply_with("421 4.3.2 Shutting down")));
  expect_delivered_via_b_only(send());
  EXPECT_EQ(
      relay_->metric("portrelay_failovers_total", {{"from", "a:" + std::to_string(a_->port())},
                                                   {"to", "b:" + std::to_string(b_.port())}}),
      1);
}

TEST_F(RelayUpstreamReplies, Mail451FailsOverToB) {
  start(with(SmtpStage::kMail, StageAction::reply_with("451 4.7.1 Greylisted")));
  expect_delivered_via_b_only(send());
}

TEST_F(RelayUpstreamReplies, Mail554GoesToTheClientWithoutFailover) {
  start(with(SmtpStage::kMail, StageAction::reply_with("554 5.7.1 Sender blocked")));
  SmtpReply reply = client_->command("MAIL FROM:<sender@example.test>");
  EXPECT_EQ(reply.code, 554) << reply.raw;
  EXPECT_EQ(reply.text, "5.7.1 Sender blocked");
  EXPECT_EQ(b_.connection_count(), 0u);
  // The client may try another sender on the same session.
  a_->clear_override(SmtpStage::kMail);
  SmtpReply second = send();
  EXPECT_EQ(second.code, 250) << second.raw;
  ASSERT_TRUE(a_->wait_for_transactions(1, 2s));
  EXPECT_EQ(b_.connection_count(), 0u);
}

TEST_F(RelayUpstreamReplies, Mail451EverywhereGivesTheUpstreamsOwnText) {
  b_.set_override(SmtpStage::kMail, StageAction::reply_with("451 4.3.2 B is busy"));
  start(with(SmtpStage::kMail, StageAction::reply_with("451 4.7.1 Greylisted by A")));
  SmtpReply reply = client_->command("MAIL FROM:<sender@example.test>");
  EXPECT_EQ(reply.code, 451) << reply.raw;
  EXPECT_EQ(reply.text, "4.3.2 B is busy");
  EXPECT_EQ(relay_->metric("portrelay_messages_total", {{"result", "deferred"}}), 1);
}

TEST_F(RelayUpstreamReplies, Rcpt554IsPerRecipientAndDoesNotFailOver) {
  FakeUpstream::Config config;
  config.rcpt_overrides["nobody@example.test"] =
      StageAction::reply_with("554 5.1.1 No such mailbox");
  start(config);
  EXPECT_EQ(client_->command("MAIL FROM:<sender@example.test>").code, 250);
  SmtpReply refused = client_->command("RCPT TO:<nobody@example.test>");
  EXPECT_EQ(refused.code, 554) << refused.raw;
  EXPECT_EQ(refused.text, "5.1.1 No such mailbox");
  EXPECT_EQ(client_->command("RCPT TO:<rcpt@example.test>").code, 250);
  EXPECT_EQ(client_->command("DATA").code, 354);
  client_->send_raw(sample_message() + ".\r\n");
  EXPECT_EQ(client_->read_reply().code, 250);
  ASSERT_TRUE(a_->wait_for_transactions(1, 2s));
  EXPECT_EQ(a_->transactions()[0].rcpt_to, std::vector<std::string>{"rcpt@example.test"});
  EXPECT_EQ(b_.connection_count(), 0u);
}

TEST_F(RelayUpstreamReplies, Rcpt451IsPerRecipientAndDoesNotFailOver) {
  start(with(SmtpStage::kRcpt, StageAction::reply_with("451 4.2.2 Mailbox full")));
  EXPECT_EQ(client_->command("MAIL FROM:<sender@example.test>").code, 250);
  SmtpReply reply = client_->command("RCPT TO:<rcpt@example.test>");
  EXPECT_EQ(reply.code, 451) << reply.raw;
  EXPECT_EQ(reply.text, "4.2.2 Mailbox full");
  EXPECT_EQ(b_.connection_count(), 0u);
}

TEST_F(RelayUpstreamReplies, Rcpt421ReplaysTheEnvelopeOnB) {
  start(with(SmtpStage::kRcpt, StageAction::reply_with("421 4.3.2 Shutting down")));
  expect_delivered_via_b_only(send());
}

TEST_F(RelayUpstreamReplies, SecondRcpt421ReplaysEarlierRecipientsOnB) {
  FakeUpstream::Config config;
  config.rcpt_overrides["second@example.test"] = StageAction::reply_with("421 4.3.2 Bye");
  start(config);
  SmtpReply reply = client_->send_message(
      "sender@example.test", {"first@example.test", "second@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(b_.wait_for_transactions(1, 2s));
  EXPECT_EQ(b_.transactions()[0].rcpt_to,
            (std::vector<std::string>{"first@example.test", "second@example.test"}));
  EXPECT_TRUE(a_->transactions().empty());
}

TEST_F(RelayUpstreamReplies, Data421FailsOverToB) {
  start(with(SmtpStage::kData, StageAction::reply_with("421 4.3.2 Shutting down")));
  expect_delivered_via_b_only(send());
}

TEST_F(RelayUpstreamReplies, Data554GoesToTheClient) {
  start(with(SmtpStage::kData, StageAction::reply_with("554 5.7.1 Not today")));
  SmtpReply reply = send();
  EXPECT_EQ(reply.code, 554) << reply.raw;
  EXPECT_EQ(reply.text, "5.7.1 Not today");
  EXPECT_EQ(b_.connection_count(), 0u);
  EXPECT_EQ(relay_->metric("portrelay_messages_total", {{"result", "failed"}}), 1);
}

TEST_F(RelayUpstreamReplies, DataEnd451IsReplayedOnBAndDeliveredOnce) {
  start(with(SmtpStage::kDataEnd, StageAction::reply_with("451 4.3.0 Queue full")));
  expect_delivered_via_b_only(send());
  // A received the whole DATA, and said try later, so it holds no copy.
  EXPECT_TRUE(a_saw("DATA"));
  EXPECT_EQ(relay_->metric("portrelay_messages_total", {{"result", "relayed"}}), 1);
  EXPECT_EQ(relay_->metric("portrelay_messages_total", {{"result", "deferred"}}), 0);
}

TEST_F(RelayUpstreamReplies, DataEnd421IsReplayedOnB) {
  start(with(SmtpStage::kDataEnd, StageAction::reply_with("421 4.3.2 Shutting down")));
  expect_delivered_via_b_only(send());
}

TEST_F(RelayUpstreamReplies, DataEnd554GoesToTheClient) {
  start(with(SmtpStage::kDataEnd, StageAction::reply_with("554 5.7.1 Spam detected")));
  SmtpReply reply = send();
  EXPECT_EQ(reply.code, 554) << reply.raw;
  EXPECT_EQ(reply.text, "5.7.1 Spam detected");
  EXPECT_EQ(b_.connection_count(), 0u);
  EXPECT_EQ(relay_->metric("portrelay_messages_total", {{"result", "failed"}}), 1);
}

TEST_F(RelayUpstreamReplies, DataEnd550WithoutEnhancedCodeGetsAFallback) {
  start(with(SmtpStage::kDataEnd, StageAction::reply_with("550 Rejected")));
  SmtpReply reply = send();
  EXPECT_EQ(reply.code, 550) << reply.raw;
  EXPECT_EQ(reply.text, "5.0.0 Rejected");
}

TEST_F(RelayUpstreamReplies, CloseAfterDataIsReplayedOnB) {
  start(with(SmtpStage::kDataEnd, StageAction::close_connection()));
  expect_delivered_via_b_only(send());
}

TEST_F(RelayUpstreamReplies, SilentAfterDataTimesOutAndIsReplayedOnB) {
  RelaySettings settings;
  settings.data_timeout = "300ms";
  start(with(SmtpStage::kDataEnd, StageAction::hang()), settings);
  expect_delivered_via_b_only(send());
}

TEST_F(RelayUpstreamReplies, DataEnd451EverywhereIsDeferredWithUpstreamText) {
  b_.set_override(SmtpStage::kDataEnd, StageAction::reply_with("452 4.3.1 B out of space"));
  start(with(SmtpStage::kDataEnd, StageAction::reply_with("451 4.3.0 A queue full")));
  SmtpReply reply = send();
  EXPECT_EQ(reply.code, 452) << reply.raw;
  EXPECT_EQ(reply.text, "4.3.1 B out of space");
  EXPECT_TRUE(a_->transactions().empty());
  EXPECT_TRUE(b_.transactions().empty());
  EXPECT_EQ(relay_->metric("portrelay_messages_total", {{"result", "deferred"}}), 1);
  // The session survives and the client can retry on it.
  EXPECT_EQ(client_->command("NOOP").code, 250);
}

}  // namespace
}  // namespace portrelay::test
