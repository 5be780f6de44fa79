// Failures inside a transaction are remembered like connect failures: an endpoint that
// completes TCP + EHLO and then hangs, resets or says 421 is cooled down, counted in
// portrelay_upstream_transaction_failures_total and marked down, so later messages do not
// wait on it again (issue: an upstream hanging after the final dot cost every message the
// whole data timeout).
#include <gtest/gtest.h>

#include <chrono>

#include "relay_harness.hpp"
#include "support/fake_upstream.hpp"

namespace portrelay::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Chain {
  FakeUpstream bad;
  FakeUpstream good;
  RelayUnderTest relay;

  Chain(SmtpStage stage, StageAction action)
      : bad({.overrides = {{stage, action}}}), relay(settings()) {}

  RelaySettings settings() {
    RelaySettings s;
    s.metrics = "listen = \"127.0.0.1:0\"";
    s.data_timeout = "1s";
    s.command_timeout = "1s";
    s.relay_extra = "cooldown = \"1m\"\n";
    s.upstreams = {plain_upstream("bad", bad.port()), plain_upstream("good", good.port())};
    return s;
  }

  // Sends `count` messages one after another; returns how long each took.
  std::vector<Clock::duration> send(int count) {
    std::vector<Clock::duration> took;
    for (int i = 0; i < count; ++i) {
      auto client = relay.client(10s);
      auto start = Clock::now();
      SmtpReply reply = client->send_message("a@example.test", {"b@example.test"},
                                             sample_message("m" + std::to_string(i)));
      took.push_back(Clock::now() - start);
      EXPECT_EQ(reply.code, 250) << reply.raw;
    }
    return took;
  }
};

void expect_only_first_message_waits(const std::vector<Clock::duration>& took) {
  ASSERT_EQ(took.size(), 4u);
  EXPECT_GE(took[0], 900ms);  // the first message pays the timeout once
  for (std::size_t i = 1; i < took.size(); ++i)
    EXPECT_LT(took[i], 500ms) << "message " << i << " waited on the failed endpoint again";
}

TEST(TransactionHealth, HangAfterTheFinalDotCoolsTheEndpointDown) {
  Chain chain(SmtpStage::kDataEnd, StageAction::hang());
  expect_only_first_message_waits(chain.send(4));
  EXPECT_EQ(chain.good.transactions().size(), 4u);
  EXPECT_EQ(chain.bad.connection_count(), 1u);  // later messages never connected again
  EXPECT_EQ(chain.relay.metric("portrelay_upstream_up", {{"upstream", "bad"}}), 0);
  EXPECT_EQ(chain.relay.metric("portrelay_upstream_transaction_failures_total",
                               {{"upstream", "bad"}, {"reason", "transaction_timeout"}}),
            1);
}

TEST(TransactionHealth, HangAtMailCoolsTheEndpointDown) {
  Chain chain(SmtpStage::kMail, StageAction::hang());
  expect_only_first_message_waits(chain.send(4));
  EXPECT_EQ(chain.bad.connection_count(), 1u);
  EXPECT_EQ(chain.relay.metric("portrelay_upstream_transaction_failures_total",
                               {{"upstream", "bad"}, {"reason", "transaction_timeout"}}),
            1);
}

TEST(TransactionHealth, ResetMidDataCoolsTheEndpointDown) {
  Chain chain(SmtpStage::kDataEnd, StageAction::close_connection());
  chain.send(3);
  EXPECT_EQ(chain.good.transactions().size(), 3u);
  EXPECT_EQ(chain.bad.connection_count(), 1u);
  EXPECT_EQ(chain.relay.metric("portrelay_upstream_up", {{"upstream", "bad"}}), 0);
  EXPECT_EQ(chain.relay.metric("portrelay_upstream_transaction_failures_total",
                               {{"upstream", "bad"}, {"reason", "transaction_reset"}}),
            1);
}

TEST(TransactionHealth, A421AtRcptCoolsTheEndpointDown) {
  Chain chain(SmtpStage::kRcpt, StageAction::reply_with("421 4.3.2 Shutting down"));
  chain.send(3);
  EXPECT_EQ(chain.bad.connection_count(), 1u);
  EXPECT_EQ(chain.relay.metric("portrelay_upstream_transaction_failures_total",
                               {{"upstream", "bad"}, {"reason", "transaction_reset"}}),
            1);
}

TEST(TransactionHealth, AnOrdinary4xxAtMailDoesNotCoolTheEndpointDown) {
  // The server is alive and answering: the next message tries it again (one round trip),
  // and it stays up.
  Chain chain(SmtpStage::kMail, StageAction::reply_with("451 4.7.1 Slow down"));
  chain.send(3);
  EXPECT_EQ(chain.good.transactions().size(), 3u);
  EXPECT_EQ(chain.relay.metric("portrelay_upstream_up", {{"upstream", "bad"}}), 1);
  EXPECT_EQ(
      chain.relay.metric("portrelay_upstream_transaction_failures_total", {{"upstream", "bad"}}),
      0);
}

}  // namespace
}  // namespace portrelay::test
