// Upstream limits (issue #18) over real sockets: a throttling reply pauses the whole
// upstream (every port) and the message goes to the next upstream; the connection cap and
// max_messages_per_connection as the fake provider sees them; passthrough's
// max_limit_wait; the spool pacing a queue to max_message_rate.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "integration/relay_harness.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::test {
namespace {

using Clock = std::chrono::steady_clock;

// Two ports of one account ("ses"): the account's limits go on the first table.
std::vector<std::string> ses_and_backup(const FakeUpstream& first, const FakeUpstream& second,
                                        const FakeUpstream& backup,
                                        const std::string& limits = "") {
  return {plain_upstream("ses", first.port(), limits), plain_upstream("ses", second.port()),
          plain_upstream("backup", backup.port())};
}

TEST(UpstreamLimits, AThrottleReplyPausesEveryPortOfTheUpstreamAndTheNextUpstreamTakesTheMail) {
  FakeUpstream first;
  FakeUpstream second;
  FakeUpstream backup;
  first.set_override(
      SmtpStage::kMail,
      StageAction::reply_with("454 Throttling failure: Maximum sending rate exceeded."));
  RelaySettings settings;
  settings.upstreams = ses_and_backup(first, second, backup);
  RelayUnderTest relay(settings);
  for (int i = 0; i < 3; ++i) {
    auto client = relay.client();
    SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
    EXPECT_EQ(reply.code, 250) << reply.raw;
    EXPECT_NE(reply.text.find("relayed via backup:"), std::string::npos) << reply.raw;
  }
  ASSERT_TRUE(backup.wait_for_transactions(3, 2s));
  // One throttle, then the whole account is paused: its other port never saw a message,
  // and the throttling port only the first one.
  EXPECT_EQ(second.connection_count(), 0u);
  EXPECT_EQ(first.connection_count(), 1u);
  const std::string metrics = relay.metrics_text();
  EXPECT_EQ(metric_value(metrics, "portrelay_upstream_throttled_total",
                         {{"upstream", "ses"}, {"kind", "throttle"}}),
            1);
  EXPECT_EQ(metric_value(metrics, "portrelay_upstream_paused", {{"upstream", "ses"}}), 1);
  EXPECT_EQ(metric_value(metrics, "portrelay_upstream_paused", {{"upstream", "backup"}}), 0);
  // Not a port failure: nothing cooled down.
  EXPECT_EQ(metric_value(metrics, "portrelay_upstream_transaction_failures_total"), 0);
  EXPECT_EQ(metric_value(metrics, "portrelay_upstream_up", {{"upstream", "ses"}}), 1);
}

// Microsoft 365 refuses a connection over its limit with 432 as the greeting. That is the
// account saying "not now", not a broken port: the upstream is paused (every port), the
// port is not cooled down, and the message goes to the next upstream.
TEST(UpstreamLimits, AThrottleGreetingPausesTheUpstreamInsteadOfCoolingThePort) {
  FakeUpstream::Config busy;
  busy.greeting = "432 4.3.2 STOREDRV.ClientSubmit; concurrent connection limit exceeded";
  FakeUpstream first(busy);
  FakeUpstream second;
  FakeUpstream backup;
  RelaySettings settings;
  settings.upstreams = ses_and_backup(first, second, backup);
  RelayUnderTest relay(settings);
  for (int i = 0; i < 3; ++i) {
    auto client = relay.client();
    SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
    EXPECT_EQ(reply.code, 250) << reply.raw;
    EXPECT_NE(reply.text.find("relayed via backup:"), std::string::npos) << reply.raw;
  }
  ASSERT_TRUE(backup.wait_for_transactions(3, 2s));
  EXPECT_EQ(first.connection_count(), 1u);  // once: then the account is paused
  EXPECT_EQ(second.connection_count(), 0u);
  const std::string metrics = relay.metrics_text();
  EXPECT_EQ(metric_value(metrics, "portrelay_upstream_throttled_total",
                         {{"upstream", "ses"}, {"kind", "throttle"}}),
            1);
  EXPECT_EQ(metric_value(metrics, "portrelay_upstream_paused", {{"upstream", "ses"}}), 1);
  EXPECT_EQ(metric_value(metrics, "portrelay_upstream_connect_failures_total"), 0);
}

// A greeting refused for another reason stays a port failure (cooled down, counted).
TEST(UpstreamLimits, AnOrdinaryRefusedGreetingStillCoolsThePortDown) {
  FakeUpstream::Config broken;
  broken.greeting = "554 5.3.2 no service here";
  FakeUpstream first(broken);
  FakeUpstream second;
  FakeUpstream backup;
  RelaySettings settings;
  settings.upstreams = ses_and_backup(first, second, backup);
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  const std::string metrics = relay.metrics_text();
  EXPECT_EQ(metric_value(metrics, "portrelay_upstream_throttled_total",
                         {{"upstream", "ses"}, {"kind", "throttle"}}),
            0);
  EXPECT_EQ(metric_value(metrics, "portrelay_upstream_connect_failures_total",
                         {{"reason", "greeting_rejected"}}),
            1);
}

TEST(UpstreamLimits, AQuotaReplyAfterTheDotIsNeverBouncedAndGoesToTheNextUpstream) {
  FakeUpstream first;
  FakeUpstream second;
  FakeUpstream backup;
  first.set_override(SmtpStage::kDataEnd,
                     StageAction::reply_with("550 5.4.5 Daily user sending limit exceeded."));
  RelaySettings settings;
  settings.upstreams = ses_and_backup(first, second, backup);
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via backup:"), std::string::npos) << reply.raw;
  EXPECT_EQ(second.connection_count(), 0u);
}

TEST(UpstreamLimits, OnlyAQuotaUpstreamLeftGivesA4xxNeverA5xx) {
  FakeUpstream only;
  only.set_override(SmtpStage::kDataEnd,
                    StageAction::reply_with("550 5.4.5 Daily user sending limit exceeded."));
  RelaySettings settings;
  settings.upstreams = {plain_upstream("gmail", only.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 451) << reply.raw;
  EXPECT_NE(reply.raw.find("4.7.0"), std::string::npos) << reply.raw;
}

TEST(UpstreamLimits, ConsecutiveRefusalsPauseTheUpstreamButOneAmongSuccessesDoesNot) {
  FakeUpstream flaky;
  FakeUpstream backup;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("flaky", flaky.port()),
                        plain_upstream("backup", backup.port())};
  // One loop: each loop's gate counts its own refusals in a row (the pause is shared).
  settings.server_extra = "workers = 1";
  RelayUnderTest relay(settings);
  auto send = [&relay]() {
    auto client = relay.client();
    return client->send_message("a@example.test", {"b@example.test"}, sample_message());
  };
  // One 451 among successes changes nothing.
  flaky.set_override(SmtpStage::kMail, StageAction::reply_with("451 4.3.0 Busy").only(1));
  EXPECT_EQ(send().code, 250);
  EXPECT_NE(send().text.find("relayed via flaky:"), std::string::npos);
  // Three in a row: paused, the fourth message goes to the backup without asking it.
  flaky.set_override(SmtpStage::kMail, StageAction::reply_with("451 4.3.0 Busy"));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(send().code, 250);
  const std::size_t commands_before = flaky.all_commands().size();
  const std::size_t mails_before = [&flaky]() {
    std::size_t n = 0;
    for (const auto& connection : flaky.all_commands())
      for (const auto& line : connection) n += line.rfind("MAIL", 0) == 0;
    return n;
  }();
  SmtpReply fourth = send();
  EXPECT_NE(fourth.text.find("relayed via backup:"), std::string::npos) << fourth.raw;
  std::size_t mails_after = 0;
  for (const auto& connection : flaky.all_commands())
    for (const auto& line : connection) mails_after += line.rfind("MAIL", 0) == 0;
  EXPECT_EQ(mails_after, mails_before);
  EXPECT_GE(flaky.all_commands().size(), commands_before);
}

// A connection held by another message frees at an unknown time: the client waits
// max_limit_wait for it, then hears 451 4.7.0.
TEST(UpstreamLimits, PassthroughWaitsUpToMaxLimitWaitThenAnswers451) {
  FakeUpstream upstream;
  upstream.set_override(SmtpStage::kDataEnd, StageAction::delayed(1500ms, "250 2.0.0 Ok").only(1));
  RelaySettings settings;
  settings.relay_extra = "max_limit_wait = \"300ms\"\n";
  settings.upstreams = {plain_upstream("capped", upstream.port(), "max_connections = 1")};
  RelayUnderTest relay(settings);
  auto first = std::async(std::launch::async, [&relay]() {
    auto client = relay.client();
    return client->send_message("a@example.test", {"b@example.test"}, sample_message()).code;
  });
  ASSERT_TRUE(upstream.wait_for_connections(1, 2s));
  std::this_thread::sleep_for(200ms);
  auto client = relay.client();
  auto started = Clock::now();
  SmtpReply second = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  auto elapsed = Clock::now() - started;
  EXPECT_EQ(second.code, 451) << second.raw;
  EXPECT_NE(second.raw.find("4.7.0"), std::string::npos) << second.raw;
  EXPECT_GE(elapsed, 280ms);
  EXPECT_LT(elapsed, 1200ms);
  EXPECT_EQ(first.get(), 250);
  EXPECT_EQ(upstream.connection_count(), 1u);
}

// A limit that cannot allow the message within max_limit_wait (a token a minute away) is
// answered at once: the client does not wait for nothing.
TEST(UpstreamLimits, PassthroughAnswersAtOnceWhenNoLimitAllowsTheMessageInTime) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("slow", upstream.port(), "max_message_rate = \"1/min\"")};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  EXPECT_EQ(client->send_message("a@example.test", {"b@example.test"}, sample_message()).code, 250);
  auto started = Clock::now();
  SmtpReply second = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(second.code, 451) << second.raw;
  EXPECT_NE(second.raw.find("4.7.0"), std::string::npos) << second.raw;
  EXPECT_LT(Clock::now() - started, 1s);
  EXPECT_EQ(upstream.transactions().size(), 1u);
}

TEST(UpstreamLimits, PassthroughWaitsForTheTokenWhenItComesWithinMaxLimitWait) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.relay_extra = "max_limit_wait = \"3s\"\n";
  settings.upstreams = {plain_upstream("paced", upstream.port(), "max_message_rate = \"2/s\"")};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  auto started = Clock::now();
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(client->send_message("a@example.test", {"b@example.test"}, sample_message()).code,
              250);
  // One every 500 ms (a burst of 1): the 5th starts 2 s after the first.
  EXPECT_GE(Clock::now() - started, 1900ms);
  EXPECT_EQ(upstream.transactions().size(), 5u);
}

TEST(UpstreamLimits, PassthroughGoesToTheNextUpstreamWhileTheFirstIsPaused) {
  FakeUpstream first;
  FakeUpstream backup;
  RelaySettings settings;
  settings.relay_extra = "max_limit_wait = \"200ms\"\n";
  settings.upstreams = {plain_upstream("first", first.port(), "max_message_rate = \"1/min\""),
                        plain_upstream("backup", backup.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  auto started = Clock::now();
  EXPECT_NE(client->send_message("a@example.test", {"b@example.test"}, sample_message())
                .text.find("relayed via first:"),
            std::string::npos);
  EXPECT_NE(client->send_message("a@example.test", {"b@example.test"}, sample_message())
                .text.find("relayed via backup:"),
            std::string::npos);
  EXPECT_LT(Clock::now() - started, 1s);  // no waiting while another upstream can take it
}

// Never more than max_connections open at the provider, under 6 concurrent clients; every
// message still goes through (waiting for a connection within max_limit_wait).
TEST(UpstreamLimits, ConnectionCapHoldsUnderConcurrentClients) {
  FakeUpstream upstream(FakeUpstreamConfig{.greeting_delay = 50ms});
  RelaySettings settings;
  settings.relay_extra = "max_limit_wait = \"10s\"\n";
  settings.upstreams = {plain_upstream("m365", upstream.port(), "max_connections = 2")};
  RelayUnderTest relay(settings);
  std::atomic<bool> done{false};
  std::atomic<std::size_t> most{0};
  std::thread watcher([&]() {
    while (!done) {
      most = std::max<std::size_t>(most, upstream.open_connections());
      std::this_thread::sleep_for(1ms);
    }
  });
  std::vector<std::future<int>> clients;
  for (int i = 0; i < 6; ++i)
    clients.push_back(std::async(std::launch::async, [&relay]() {
      int ok = 0;
      for (int j = 0; j < 3; ++j) {
        auto client = relay.client();
        ok += client->send_message("a@example.test", {"b@example.test"}, sample_message()).code ==
              250;
      }
      return ok;
    }));
  int delivered = 0;
  std::string error;
  for (auto& client : clients) {
    try {
      delivered += client.get();
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  done = true;
  watcher.join();
  EXPECT_EQ(error, "");
  EXPECT_EQ(delivered, 18);
  EXPECT_EQ(upstream.transactions().size(), 18u);
  EXPECT_LE(most.load(), 2u);
  EXPECT_GE(most.load(), 1u);
}

TEST(UpstreamLimits, MaxMessagesPerConnectionReconnects) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.upstreams = {
      plain_upstream("sendgrid", upstream.port(), "max_messages_per_connection = 2")};
  // One loop: the count below is one pool's connections (each loop has a pool of its own).
  settings.server_extra = "workers = 1";
  RelayUnderTest relay(settings);
  for (int i = 0; i < 5; ++i) {
    auto client = relay.client();
    EXPECT_EQ(client->send_message("a@example.test", {"b@example.test"}, sample_message()).code,
              250);
  }
  ASSERT_TRUE(upstream.wait_for_transactions(5, 2s));
  EXPECT_EQ(upstream.connection_count(), 3u);  // 2 + 2 + 1
  // Each spent connection was told QUIT.
  std::size_t quits = 0;
  for (const auto& connection : upstream.all_commands())
    for (const auto& line : connection) quits += line == "QUIT";
  EXPECT_GE(quits, 2u);
}

// Spool mode: a queue is paced to max_message_rate by the scheduler (a timer for the next
// token, no attempt refused).
TEST(UpstreamLimits, SpoolPacesTheQueueToTheRate) {
  TempDir dir;
  FakeUpstream upstream;
  RelaySettings settings;
  settings.relay_extra = "mode = \"spool\"\n";
  settings.upstreams = {plain_upstream("paced", upstream.port(),
                                       "max_message_rate = \"10/s\"\nmax_message_burst = 1")};
  settings.spool = "dir = \"" + dir.path() + "/spool\"\n";
  RelayUnderTest relay(settings);
  auto client = relay.client();
  auto started = Clock::now();
  for (int i = 0; i < 20; ++i)
    ASSERT_EQ(client->send_message("a@example.test", {"b@example.test"}, sample_message()).code,
              250);
  ASSERT_TRUE(upstream.wait_for_transactions(20, 10s));
  const auto elapsed = Clock::now() - started;
  EXPECT_GE(elapsed, 1800ms);  // 20 at 10/s with a burst of 1
  EXPECT_LT(elapsed, 4s);
  EXPECT_EQ(relay.metric("portrelay_upstream_throttled_total"), 0);
}

}  // namespace
}  // namespace portrelay::test

namespace portrelay::test {
namespace {

// max_message_size: an upstream whose limit is smaller is skipped for that message (not
// tried, not blamed); smaller messages still go to it.
TEST(UpstreamLimits, AnUpstreamTooSmallForTheMessageIsSkipped) {
  FakeUpstream small;
  FakeUpstream big;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("small", small.port(), "max_message_size = \"200B\""),
                        plain_upstream("big", big.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  // Declared with SIZE= at MAIL: skipped from the start.
  ASSERT_EQ(client->command("MAIL FROM:<a@example.test> SIZE=5000").code, 250);
  ASSERT_EQ(client->command("RCPT TO:<b@example.test>").code, 250);
  ASSERT_EQ(client->command("DATA").code, 354);
  client->send_raw(sample_message() + std::string(300, 'x') + "\r\n.\r\n");
  SmtpReply declared = client->read_reply();
  EXPECT_NE(declared.text.find("relayed via big:"), std::string::npos) << declared.raw;
  EXPECT_EQ(small.connection_count(), 0u);
  // A small message goes to the preferred upstream.
  auto second = relay.client();
  SmtpReply fits =
      second->send_message("a@example.test", {"b@example.test"}, "Subject: s\r\n\r\nx\r\n");
  EXPECT_NE(fits.text.find("relayed via small:"), std::string::npos) << fits.raw;
}

// Spool mode knows the size of the queued body.
TEST(UpstreamLimits, SpoolSkipsAnUpstreamTooSmallForTheQueuedMessage) {
  TempDir dir;
  FakeUpstream small;
  FakeUpstream big;
  RelaySettings settings;
  settings.relay_extra = "mode = \"spool\"\n";
  settings.upstreams = {plain_upstream("small", small.port(), "max_message_size = \"200B\""),
                        plain_upstream("big", big.port())};
  settings.spool = "dir = \"" + dir.path() + "/spool\"\n";
  RelayUnderTest relay(settings);
  auto client = relay.client();
  ASSERT_EQ(client
                ->send_message("a@example.test", {"b@example.test"},
                               sample_message() + std::string(300, 'x') + "\r\n")
                .code,
            250);
  ASSERT_TRUE(big.wait_for_transactions(1, 5s));
  EXPECT_EQ(small.transactions().size(), 0u);
}

}  // namespace
}  // namespace portrelay::test
