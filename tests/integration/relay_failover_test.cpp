// Failover along the chain over real sockets: silent (black-holed) ports, refused ports and
// working ones, and what the metrics say about each attempt.
#include <thread>

#include "relay_harness.hpp"
#include "support/blocked_ports.hpp"

namespace portrelay::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string label(const std::string& name, std::uint16_t port) {
  return name + ":" + std::to_string(port);
}

// The default: endpoints are raced with a stagger, so the black hole costs one stagger
// (250 ms) and is cancelled, not waited out; the refusal hands over at once.
TEST(RelayFailover, BlackholeThenRefusedThenWorkingDeliversAfterOneStagger) {
  BlackholePort blackhole;
  RefusedPort refused;
  FakeUpstream working;
  RelaySettings settings;
  settings.connect_timeout = "5s";
  settings.upstreams = {plain_upstream("hole", blackhole.port()),
                        plain_upstream("refused", refused.port()),
                        plain_upstream("good", working.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();

  auto started = Clock::now();
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  auto elapsed = Clock::now() - started;
  EXPECT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via good:"), std::string::npos) << reply.raw;
  EXPECT_GE(elapsed, 240ms);   // one stagger on the black hole
  EXPECT_LT(elapsed, 1000ms);  // far below the 5 s connect timeout

  ASSERT_TRUE(working.wait_for_transactions(1, 2s));
  EXPECT_EQ(working.transactions().at(0).content, sample_message());

  std::string metrics = relay.metrics_text();
  const char* failures = "portrelay_upstream_connect_failures_total";
  EXPECT_EQ(metric_value(metrics, failures, {{"upstream", "hole"}}), 0);
  EXPECT_EQ(
      metric_value(metrics, "portrelay_upstream_connect_cancelled_total", {{"upstream", "hole"}}),
      1);
  EXPECT_EQ(metric_value(metrics, failures, {{"upstream", "refused"}, {"reason", "refused"}}), 1);
  EXPECT_EQ(metric_value(metrics, failures, {{"upstream", "refused"}}), 1);
  EXPECT_EQ(metric_value(metrics, failures, {{"upstream", "good"}}), 0);
  EXPECT_EQ(metric_value(metrics, "portrelay_upstream_connect_attempts_total",
                         {{"upstream", "hole"}, {"port", std::to_string(blackhole.port())}}),
            1);
  EXPECT_EQ(
      metric_value(metrics, "portrelay_upstream_connect_attempts_total", {{"upstream", "good"}}),
      1);
  // A failover is the message going somewhere other than the preferred endpoint.
  EXPECT_EQ(metric_value(
                metrics, "portrelay_failovers_total",
                {{"from", label("hole", blackhole.port())}, {"to", label("good", working.port())}}),
            1);
  EXPECT_EQ(metric_value(metrics, "portrelay_failovers_total"), 1);
  EXPECT_EQ(metric_value(metrics, "portrelay_upstream_up", {{"upstream", "good"}}), 1);
  EXPECT_EQ(metric_value(metrics, "portrelay_messages_total", {{"result", "relayed"}}), 1);
}

// With max_parallel = 1 the chain is walked one endpoint at a time: the black hole costs
// its whole connect timeout and is classified as a timeout.
TEST(RelayFailover, SequentialChainWaitsOutTheConnectTimeout) {
  BlackholePort blackhole;
  RefusedPort refused;
  FakeUpstream working;
  RelaySettings settings;
  settings.connect_timeout = "300ms";
  settings.relay_extra = "max_parallel = 1\n";
  settings.upstreams = {plain_upstream("hole", blackhole.port()),
                        plain_upstream("refused", refused.port()),
                        plain_upstream("good", working.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  auto started = Clock::now();
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  auto elapsed = Clock::now() - started;
  EXPECT_EQ(reply.code, 250) << reply.raw;
  EXPECT_GE(elapsed, 290ms);
  EXPECT_LT(elapsed, 1000ms);
  std::string metrics = relay.metrics_text();
  const char* failures = "portrelay_upstream_connect_failures_total";
  EXPECT_EQ(metric_value(metrics, failures, {{"upstream", "hole"}, {"reason", "timeout"}}), 1);
  EXPECT_EQ(metric_value(metrics, failures, {{"upstream", "refused"}, {"reason", "refused"}}), 1);
  EXPECT_EQ(metric_value(metrics, "portrelay_upstream_up", {{"upstream", "hole"}}), 0);
  EXPECT_EQ(metric_value(
                metrics, "portrelay_failovers_total",
                {{"from", label("hole", blackhole.port())}, {"to", label("good", working.port())}}),
            1);
}

TEST(RelayFailover, AllEndpointsDeadGives451AndDeliversNothing) {
  BlackholePort blackhole;
  RefusedPort refused;
  FakeUpstream rejecting({.greeting = "554 5.3.2 Not accepting mail"});
  RelaySettings settings;
  settings.upstreams = {plain_upstream("hole", blackhole.port()),
                        plain_upstream("refused", refused.port()),
                        plain_upstream("rejecting", rejecting.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();

  auto started = Clock::now();
  SmtpReply reply = client->command("MAIL FROM:<a@example.test>");
  EXPECT_LT(Clock::now() - started, 300ms + 500ms);
  EXPECT_EQ(reply.code, 451) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "4.4.1 ") << reply.raw;
  // Every endpoint is named with what went wrong, so the operator can tell from the log.
  EXPECT_NE(reply.text.find("hole:" + std::to_string(blackhole.port()) + " timeout"),
            std::string::npos)
      << reply.raw;
  EXPECT_NE(reply.text.find("refused"), std::string::npos) << reply.raw;
  EXPECT_NE(reply.text.find("greeting_rejected"), std::string::npos) << reply.raw;

  // The session is still usable and nothing reached any upstream.
  EXPECT_EQ(client->command("RCPT TO:<b@example.test>").code, 503);
  EXPECT_EQ(client->command("NOOP").code, 250);
  EXPECT_TRUE(rejecting.transactions().empty());
  for (const auto& commands : rejecting.all_commands())
    for (const auto& command : commands) EXPECT_NE(command.substr(0, 4), "MAIL") << command;

  std::string metrics = relay.metrics_text();
  EXPECT_EQ(metric_value(metrics, "portrelay_messages_total", {{"result", "deferred"}}), 1);
  EXPECT_EQ(metric_value(metrics, "portrelay_messages_total", {{"result", "relayed"}}), 0);
  EXPECT_EQ(metric_value(metrics, "portrelay_upstream_connect_failures_total",
                         {{"upstream", "rejecting"}, {"reason", "greeting_rejected"}}),
            1);
}

TEST(RelayFailover, RecipientsAreReplayedWhenTheFirstEndpointFailsAtData) {
  FakeUpstream first(
      {.overrides = {{SmtpStage::kData, StageAction::reply_with("451 4.3.0 Try again later")}}});
  FakeUpstream second;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("first", first.port()),
                        plain_upstream("second", second.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  std::vector<std::string> recipients = {"r1@example.test", "r2@example.test", "r3@example.test"};
  SmtpReply reply = client->send_message("a@example.test", recipients, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via second:"), std::string::npos) << reply.raw;
  ASSERT_TRUE(second.wait_for_transactions(1, 2s));
  auto transaction = second.transactions().at(0);
  EXPECT_EQ(transaction.mail_from, "a@example.test");
  EXPECT_EQ(transaction.rcpt_to, recipients);
  EXPECT_EQ(transaction.content, sample_message());
  EXPECT_TRUE(first.transactions().empty());
  EXPECT_EQ(relay.metric("portrelay_failovers_total", {{"from", label("first", first.port())},
                                                       {"to", label("second", second.port())}}),
            1);
}

TEST(RelayFailover, NextMessageStartsFromTheTopOfTheChainAgain) {
  // After `first` recovers, a new message goes there again (preferred endpoint first).
  // The 421 inside the transaction cools `first` down; the background probe finds it
  // healthy once the cool-down is over, and traffic fails back.
  FakeUpstream first(
      {.overrides = {{SmtpStage::kMail, StageAction::reply_with("421 4.3.2 Going down").only(1)}}});
  FakeUpstream second;
  RelaySettings settings;
  settings.relay_extra = "cooldown = \"200ms\"\n";
  settings.upstreams = {plain_upstream("first", first.port()),
                        plain_upstream("second", second.port())};
  RelayUnderTest relay(settings);
  {
    auto client = relay.client();
    EXPECT_EQ(client->send_message("a@example.test", {"b@example.test"}, sample_message()).code,
              250);
  }
  ASSERT_TRUE(second.wait_for_transactions(1, 2s));
  // The probe's connection (the second one to `first`) reaches EHLO: `first` is back.
  ASSERT_TRUE(first.wait_for_connections(2, 3s));
  for (int i = 0; i < 200 && first.commands(1).empty(); ++i) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(50ms);
  auto client = relay.client();
  SmtpReply reply = client->send_message("c@example.test", {"d@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(first.wait_for_transactions(1, 2s));
  EXPECT_EQ(first.transactions().at(0).mail_from, "c@example.test");
  EXPECT_EQ(second.transactions().size(), 1u);
}

}  // namespace
}  // namespace portrelay::test
