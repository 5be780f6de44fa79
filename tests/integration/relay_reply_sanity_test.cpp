// Upstreams that answer out of turn or with codes that make no sense at that point: the
// client must never hear 2xx for a message the upstream did not accept.
#include "relay_harness.hpp"

namespace portrelay::test {
namespace {

class RelayReplySanity : public ::testing::Test {
 protected:
  void start(FakeUpstream::Config config) {
    upstream_ = std::make_unique<FakeUpstream>(std::move(config));
    RelaySettings settings;
    settings.upstreams = {plain_upstream("a", upstream_->port())};
    relay_ = std::make_unique<RelayUnderTest>(settings);
    client_ = relay_->client();
  }
  SmtpReply send() {
    return client_->send_message("sender@example.test", {"rcpt@example.test"}, sample_message());
  }
  double messages(const std::string& result) {
    return relay_->metric("portrelay_messages_total", {{"result", result}});
  }

  std::unique_ptr<FakeUpstream> upstream_;
  std::unique_ptr<RelayUnderTest> relay_;
  std::unique_ptr<SmtpTestClient> client_;
};

TEST_F(RelayReplySanity, DataCommandAnswered250IsNotPassedOnAsSuccess) {
  // 250 to DATA (instead of 354) means no content was taken. With no other endpoint, the
  // relay used to hand this 250 to the client as "the last upstream refusal".
  start({.overrides = {{SmtpStage::kData, StageAction::reply_with("250 2.0.0 Whatever")}}});
  SmtpReply reply = send();
  EXPECT_EQ(reply.code, 451) << reply.raw;
  EXPECT_TRUE(upstream_->transactions().empty());
  EXPECT_EQ(messages("relayed"), 0);
  EXPECT_EQ(messages("deferred"), 1);
}

TEST_F(RelayReplySanity, EndOfDataAnswered354IsNotRelayed) {
  start({.overrides = {{SmtpStage::kDataEnd, StageAction::reply_with("354 2.0.0 Say again")}}});
  SmtpReply reply = send();
  EXPECT_EQ(reply.code, 451) << reply.raw;
  EXPECT_EQ(reply.text.find("relayed via"), std::string::npos) << reply.raw;
  EXPECT_EQ(messages("relayed"), 0);
}

TEST_F(RelayReplySanity, ReplySentBeforeTheBodyIsNotTheAnswerToTheBody) {
  // The 250 arrives in the same segment as the 354, before the relay sent a byte of the
  // body; the upstream's real verdict after the dot is 554.
  start({.overrides = {{SmtpStage::kData, StageAction::reply_with("354 Go ahead\n250 2.0.0 Ok")},
                       {SmtpStage::kDataEnd, StageAction::reply_with("554 5.7.1 Rejected")}}});
  SmtpReply reply = send();
  EXPECT_NE(reply.code / 100, 2) << reply.raw;
  EXPECT_EQ(messages("relayed"), 0);
  EXPECT_TRUE(upstream_->transactions().empty());
}

}  // namespace
}  // namespace portrelay::test

namespace portrelay::test {
namespace {

// A 3xx where a final answer was due (MAIL, RCPT) is out of protocol: it must neither be
// passed to the client as if it were an acceptance nor open the transaction; the next
// endpoint takes the message.
class RelayOutOfProtocolReplies : public ::testing::TestWithParam<SmtpStage> {};

TEST_P(RelayOutOfProtocolReplies, ThreeHundredReplyMovesTheMessageToTheNextEndpoint) {
  FakeUpstream odd({.overrides = {{GetParam(), StageAction::reply_with("354 3.0.0 what now")}}});
  FakeUpstream good;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("odd", odd.port()), plain_upstream("good", good.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via good:"), std::string::npos) << reply.raw;
  ASSERT_TRUE(good.wait_for_transactions(1, 2s));
  EXPECT_TRUE(odd.transactions().empty());
}

INSTANTIATE_TEST_SUITE_P(Stages, RelayOutOfProtocolReplies,
                         ::testing::Values(SmtpStage::kMail, SmtpStage::kRcpt),
                         [](const auto& info) {
                           return info.param == SmtpStage::kMail ? std::string("Mail")
                                                                 : std::string("Rcpt");
                         });

}  // namespace
}  // namespace portrelay::test
