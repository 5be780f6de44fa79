// relay::Deliverer's whole-message API (the spool's) against real loopback peers: the
// report says, per recipient, what became of it and which endpoint answered, so no caller
// parses reply text to decide.
#include "portrelay/relay/deliverer.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "portrelay/config/config.hpp"
#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/loop_thread.hpp"
#include "portrelay/relay/endpoint_runtime.hpp"
#include "portrelay/relay/racing_selector.hpp"
#include "relay_harness.hpp"
#include "support/blocked_ports.hpp"
#include "support/fake_upstream.hpp"

namespace portrelay::test {
namespace {

using namespace std::chrono_literals;
using relay::DeliveryOutcome;

// One deliver() on its own loop thread over the chain `toml`; the report it gave.
class OneDelivery {
 public:
  OneDelivery(const std::string& toml, std::vector<std::string> recipients)
      : config_(config::parse_config(toml, "test.toml")) {
    thread_.start([this, recipients](net::Loop& loop) {
      metrics_ = std::make_unique<metrics::Metrics>(config_.chain, "test");
      selector_ = std::make_shared<relay::RacingSelector>(
          loop, relay::build_endpoint_runtimes(config_), relay::timeouts_from(config_.relay),
          "relay.test", relay::RacingOptions::from(config_.relay), *metrics_);
      body_.append("Subject: t\r\n\r\nbody\r\n");
      deliverer_ = std::make_unique<relay::Deliverer>(loop, selector_, *metrics_, "q1");
      smtp::PathArgument sender;
      sender.address = "a@example.test";
      deliverer_->deliver(sender, recipients, body_, "q1", [this](relay::DeliveryReport report) {
        std::lock_guard lock(mutex_);
        report_ = std::move(report);
        done_.notify_all();
      });
      return net::LoopThread::Hooks{.stop =
                                        [this]() {
                                          deliverer_.reset();
                                          selector_->shutdown();
                                        },
                                    .teardown =
                                        [this]() {
                                          selector_.reset();
                                          metrics_.reset();
                                        }};
    });
  }
  ~OneDelivery() { thread_.stop(); }

  std::optional<relay::DeliveryReport> wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    done_.wait_for(lock, timeout, [&]() { return report_.has_value(); });
    return report_;
  }

 private:
  config::Config config_;
  net::LoopThread thread_;
  // Loop thread only:
  std::unique_ptr<metrics::Metrics> metrics_;
  std::shared_ptr<relay::RacingSelector> selector_;
  relay::MessageBody body_;
  std::unique_ptr<relay::Deliverer> deliverer_;
  // Shared:
  std::mutex mutex_;
  std::condition_variable done_;
  std::optional<relay::DeliveryReport> report_;
};

std::string chain(const std::string& upstreams) {
  return "[relay]\nconnect_timeout = \"2s\"\nprobe_interval = \"0s\"\n[metrics]\nenabled = "
         "false\n" +
         upstreams;
}

TEST(Deliverer, ReportsEachRecipientsOutcomeAndTheEndpointThatAnswered) {
  RefusedPort refused;
  FakeUpstream upstream;
  upstream.set_rcpt_override("gone@example.test", StageAction::reply_with("550 5.1.1 unknown"));
  upstream.set_rcpt_override("full@example.test", StageAction::reply_with("452 4.2.2 full"));
  OneDelivery delivery(
      chain(plain_upstream("dead", refused.port()) + plain_upstream("sink", upstream.port())),
      {"b@example.test", "gone@example.test", "full@example.test"});
  auto report = delivery.wait(10s);
  ASSERT_TRUE(report.has_value());
  const std::string sink = "sink:" + std::to_string(upstream.port());
  EXPECT_EQ(report->outcome, DeliveryOutcome::Delivered);
  EXPECT_EQ(report->endpoint, sink);
  EXPECT_EQ(report->reply.code, 250);
  ASSERT_EQ(report->recipients.size(), 3u);
  EXPECT_EQ(report->recipients[0].address, "b@example.test");
  EXPECT_EQ(report->recipients[0].outcome, DeliveryOutcome::Delivered);
  EXPECT_TRUE(report->recipients[0].rcpt_accepted);
  EXPECT_EQ(report->recipients[0].endpoint, sink);
  EXPECT_EQ(report->recipients[1].outcome, DeliveryOutcome::Refused);
  EXPECT_EQ(report->recipients[1].reply.code, 550);
  EXPECT_EQ(report->recipients[1].endpoint, sink);
  EXPECT_FALSE(report->recipients[1].rcpt_accepted);
  EXPECT_EQ(report->recipients[2].outcome, DeliveryOutcome::Deferred);
  EXPECT_EQ(report->recipients[2].reply.code, 452);
  ASSERT_TRUE(upstream.wait_for_transactions(1, 5s));
  EXPECT_EQ(upstream.transactions()[0].rcpt_to, (std::vector<std::string>{"b@example.test"}));
}

TEST(Deliverer, NothingReachableIsDeferredWithNoEndpoint) {
  RefusedPort first;
  RefusedPort second;
  OneDelivery delivery(
      chain(plain_upstream("a", first.port()) + plain_upstream("b", second.port())),
      {"b@example.test", "c@example.test"});
  auto report = delivery.wait(10s);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->outcome, DeliveryOutcome::Deferred);
  EXPECT_EQ(report->endpoint, "");  // the spool waits for the chain to come back
  EXPECT_EQ(report->reply.code, 451);
  ASSERT_EQ(report->recipients.size(), 2u);
  for (const auto& recipient : report->recipients) {
    EXPECT_EQ(recipient.outcome, DeliveryOutcome::Deferred);
    EXPECT_EQ(recipient.endpoint, "");
    EXPECT_EQ(recipient.reply.code, 451);
  }
}

TEST(Deliverer, EveryRecipientRefusedForGoodSendsNoBodyAndIsRefused) {
  FakeUpstream upstream;
  upstream.set_override(SmtpStage::kRcpt, StageAction::reply_with("550 5.1.1 unknown"));
  OneDelivery delivery(chain(plain_upstream("sink", upstream.port())),
                       {"x@example.test", "y@example.test"});
  auto report = delivery.wait(10s);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->outcome, DeliveryOutcome::Refused);
  EXPECT_EQ(report->endpoint, "sink:" + std::to_string(upstream.port()));
  for (const auto& recipient : report->recipients)
    EXPECT_EQ(recipient.outcome, DeliveryOutcome::Refused);
  EXPECT_TRUE(upstream.transactions().empty()) << "no DATA without a recipient";
}

TEST(Deliverer, SenderRefusedForGoodRefusesEveryRecipient) {
  FakeUpstream upstream;
  upstream.set_override(SmtpStage::kMail, StageAction::reply_with("550 5.7.1 not allowed"));
  OneDelivery delivery(chain(plain_upstream("sink", upstream.port())), {"x@example.test"});
  auto report = delivery.wait(10s);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->outcome, DeliveryOutcome::Refused);
  ASSERT_EQ(report->recipients.size(), 1u);
  EXPECT_EQ(report->recipients[0].outcome, DeliveryOutcome::Refused);
  EXPECT_EQ(report->recipients[0].reply.code, 550);
  EXPECT_EQ(report->recipients[0].endpoint, "sink:" + std::to_string(upstream.port()));
}

}  // namespace
}  // namespace portrelay::test
