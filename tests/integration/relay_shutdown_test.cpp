// Graceful shutdown: a message in flight is finished, idle clients are told 421.
#include <future>

#include "relay_harness.hpp"

namespace portrelay::test {
namespace {

using Clock = std::chrono::steady_clock;

class RelayShutdown : public ::testing::Test {
 protected:
  RelayShutdown() {
    RelaySettings settings;
    settings.upstreams = {plain_upstream("a", upstream_.port())};
    relay_ = std::make_unique<RelayUnderTest>(settings);
  }
  // stop() blocks until the relay has drained, so it runs beside the test's client.
  std::future<void> stop_async(std::chrono::milliseconds grace) {
    return std::async(std::launch::async, [this, grace] { relay_->stop(grace); });
  }

  FakeUpstream upstream_;
  std::unique_ptr<RelayUnderTest> relay_;
};

TEST_F(RelayShutdown, MessageInDataIsFinishedThen421) {
  auto client = relay_->client();
  begin_data(*client);
  client->send_raw("Subject: in flight\r\n\r\nfirst half\r\n");
  auto stopped = stop_async(3s);
  std::this_thread::sleep_for(200ms);  // the shutdown has reached the loop
  EXPECT_EQ(stopped.wait_for(0ms), std::future_status::timeout);
  client->send_raw("second half\r\n.\r\n");
  SmtpReply reply = client->read_reply();
  EXPECT_EQ(reply.code, 250) << reply.raw;
  SmtpReply closing = client->read_reply();
  EXPECT_EQ(closing.code, 421) << closing.raw;
  EXPECT_TRUE(client->closed(2s));
  ASSERT_EQ(stopped.wait_for(2s), std::future_status::ready);
  ASSERT_TRUE(upstream_.wait_for_transactions(1, 1s));
  EXPECT_EQ(upstream_.transactions()[0].content,
            "Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n");
}

TEST_F(RelayShutdown, IdleSessionGets421AndNewClientsAreNotServed) {
  auto idle = relay_->client();
  std::uint16_t port = relay_->port();
  auto started = Clock::now();
  auto stopped = stop_async(3s);
  SmtpReply reply = idle->read_reply();
  EXPECT_EQ(reply.code, 421) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "4.3.2 ") << reply.raw;
  EXPECT_TRUE(idle->closed(2s));
  ASSERT_EQ(stopped.wait_for(2s), std::future_status::ready);
  EXPECT_LT(Clock::now() - started, 1s);  // nothing to wait for: no grace period spent
  SmtpTestClient late(1s);
  EXPECT_THROW(
      {
        late.connect("127.0.0.1", port);
        late.read_reply();
      },
      SmtpTestError);
}

TEST_F(RelayShutdown, SessionBetweenMailAndDataMayFinishItsMessage) {
  auto client = relay_->client();
  EXPECT_EQ(client->command("MAIL FROM:<a@example.test>").code, 250);
  auto stopped = stop_async(3s);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(client->command("RCPT TO:<b@example.test>").code, 250);
  EXPECT_EQ(client->command("DATA").code, 354);
  client->send_raw(sample_message() + ".\r\n");
  EXPECT_EQ(client->read_reply().code, 250);
  EXPECT_EQ(client->read_reply().code, 421);
  ASSERT_EQ(stopped.wait_for(2s), std::future_status::ready);
  EXPECT_TRUE(upstream_.wait_for_transactions(1, 1s));
}

TEST_F(RelayShutdown, StalledClientIsCutOffAfterTheGracePeriod) {
  auto client = relay_->client();
  begin_data(*client);
  client->send_raw("Subject: never finished\r\n");
  auto started = Clock::now();
  auto stopped = stop_async(400ms);
  ASSERT_EQ(stopped.wait_for(3s), std::future_status::ready);
  auto elapsed = Clock::now() - started;
  EXPECT_GE(elapsed, 350ms);
  EXPECT_LT(elapsed, 1500ms);
  EXPECT_TRUE(client->closed(1s));
  EXPECT_TRUE(upstream_.transactions().empty());
}

TEST_F(RelayShutdown, MessageWaitingForTheUpstreamIsFinished) {
  // The client has sent the final dot; the upstream takes a while to answer.
  upstream_.set_override(SmtpStage::kDataEnd,
                         StageAction::delayed(500ms, "250 2.0.0 Ok: slow but queued"));
  auto client = relay_->client();
  begin_data(*client);
  client->send_raw(sample_message() + ".\r\n");
  std::this_thread::sleep_for(100ms);
  auto stopped = stop_async(3s);
  SmtpReply reply = client->read_reply();
  EXPECT_EQ(reply.code, 250) << reply.raw;
  EXPECT_EQ(client->read_reply().code, 421);
  ASSERT_EQ(stopped.wait_for(2s), std::future_status::ready);
  EXPECT_EQ(upstream_.transactions().size(), 1u);
}

}  // namespace
}  // namespace portrelay::test
