// Transport-level details: data split across reads, IPv6, host names with several addresses,
// large bodies replayed on failover, shutdown while an upstream attempt is still running.
#include <future>

#include "relay_harness.hpp"
#include "support/blocked_ports.hpp"

namespace portrelay::test {
namespace {

using Clock = std::chrono::steady_clock;

TEST(RelayTransport, TerminatorSplitAcrossReads) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  begin_data(*client);
  // Every piece arrives on its own, so the reader sees each boundary case.
  for (const char* piece :
       {"Subject: split\r", "\n\r\n", ".", ".dot line\r\n", "body\r", "\n", ".", "\r", "\n"}) {
    client->send_raw(piece);
    std::this_thread::sleep_for(15ms);
  }
  SmtpReply reply = client->read_reply();
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream.transactions()[0].content, "Subject: split\r\n\r\n.dot line\r\nbody\r\n");
}

TEST(RelayTransport, SmugglingMarkerSplitAcrossReadsIsStillRejected) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  begin_data(*client);
  for (const char* piece : {"Subject: x\r\n\r\nbody\r\n", ".", "\n", "MAIL FROM:<ceo@x.test>\r\n",
                            "\r\n", ".", "\r\n"}) {
    client->send_raw(piece);
    std::this_thread::sleep_for(15ms);
  }
  SmtpReply reply = client->read_reply();
  EXPECT_EQ(reply.code, 554) << reply.raw;
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(upstream.transactions().empty());
}

TEST(RelayTransport, Ipv6ListenerAndUpstream) {
  FakeUpstream upstream({.host = "::1"});
  std::string toml =
      "[server]\nlisten = [\"[::1]:0\"]\nhostname = \"relay.test\"\n"
      "[[upstream]]\nname = \"v6\"\nhost = \"::1\"\nport = " +
      std::to_string(upstream.port()) + "\ntls = \"none\"\n[metrics]\nenabled = false\n";
  RelayUnderTest relay(toml);
  SmtpTestClient client(5s);
  client.connect("::1", relay.port());
  EXPECT_EQ(client.read_reply().code, 220);
  EXPECT_EQ(client.command("EHLO client.test").code, 250);
  EXPECT_EQ(client.send_message("a@example.test", {"b@example.test"}, sample_message()).code, 250);
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
}

TEST(RelayTransport, HostNameIsResolved) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.upstreams = {"[[upstream]]\nname = \"named\"\nhost = \"localhost\"\nport = " +
                        std::to_string(upstream.port()) + "\ntls = \"none\"\n"};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
}

TEST(RelayTransport, LargeBodyIsReplayedByteExactOnFailover) {
  FakeUpstream first(
      {.overrides = {{SmtpStage::kDataEnd, StageAction::reply_with("451 4.3.0 Try later")}}});
  FakeUpstream second;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("first", first.port()),
                        plain_upstream("second", second.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client(10s);
  std::string content = "Subject: big replay\r\n\r\n";
  for (std::size_t i = 0; content.size() < (3u << 20); ++i)
    content += (i % 11 == 0 ? "." : "") + std::string(1 + i % 300, 'a' + i % 26) + "\r\n";
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, content);
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(second.wait_for_transactions(1, 5s));
  auto transaction = second.transactions()[0];
  ASSERT_EQ(transaction.content.size(), content.size());
  EXPECT_TRUE(transaction.content == content);
  EXPECT_TRUE(first.transactions().empty());
}

TEST(RelayTransport, ShutdownWhileAnUpstreamAttemptIsRunning) {
  BlackholePort blackhole;
  RelaySettings settings;
  settings.connect_timeout = "5s";
  settings.upstreams = {plain_upstream("hole", blackhole.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  client->send_line("MAIL FROM:<a@example.test>");
  std::this_thread::sleep_for(100ms);
  auto started = Clock::now();
  auto stopped = std::async(std::launch::async, [&relay] { relay.stop(300ms); });
  ASSERT_EQ(stopped.wait_for(3s), std::future_status::ready);
  EXPECT_LT(Clock::now() - started, 1500ms);
  EXPECT_TRUE(client->closed(1s));
}

TEST(RelayTransport, RefusedClientsDoNotLeakSessions) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.server_extra = "allow = [\"10.0.0.0/8\"]";
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  for (int i = 0; i < 5; ++i) {
    SmtpTestClient client(2s);
    client.connect("127.0.0.1", relay.port());
    EXPECT_EQ(client.read_reply().code, 554);
    EXPECT_TRUE(client.closed(1s));
  }
  auto deadline = Clock::now() + 2s;
  while (relay.metric("portrelay_client_sessions_active") != 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(relay.metric("portrelay_client_sessions_active"), 0);
}

}  // namespace
}  // namespace portrelay::test
