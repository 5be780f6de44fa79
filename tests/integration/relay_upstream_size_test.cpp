// #18 item 3, sizes known before sending, with real sockets: each endpoint's EHLO SIZE is
// remembered; an endpoint whose SIZE is below a message is skipped for that message only
// (at MAIL when the client gave SIZE=, at the final dot when it did not); portrelay's own
// SIZE is the largest some endpoint takes, and a message larger than that is refused with
// 552 5.3.4 at MAIL ... SIZE= or at the final dot, before any upstream gets its DATA.
#include "relay_harness.hpp"

namespace portrelay::test {
namespace {

FakeUpstream::Config with_size(std::uint64_t size) {
  FakeUpstream::Config config;
  config.ehlo_lines = {"fake.upstream", "PIPELINING", "SIZE " + std::to_string(size), "8BITMIME",
                       "ENHANCEDSTATUSCODES"};
  return config;
}

// `octets` of message content in lines of 100 (CRLF included).
std::string message_of(std::size_t octets) {
  std::string content = "Subject: size test\r\n\r\n";
  while (content.size() + 100 <= octets) content += std::string(98, 'x') + "\r\n";
  content += std::string(octets - content.size() - 2, 'y') + "\r\n";
  return content;
}

bool saw_command(const FakeUpstream& upstream, const std::string& prefix) {
  for (const auto& commands : upstream.all_commands())
    for (const auto& command : commands)
      if (command.rfind(prefix, 0) == 0) return true;
  return false;
}

// The SIZE the relay's EHLO advertises.
std::string advertised_size(RelayUnderTest& relay) {
  auto client = relay.client();
  const SmtpReply ehlo = client->command("EHLO size.test");
  const auto at = ehlo.text.find("SIZE ");
  if (at == std::string::npos) return "(none)";
  return ehlo.text.substr(at + 5, ehlo.text.find_first_not_of("0123456789", at + 5) - at - 5);
}

TEST(RelayUpstreamSize, AnEndpointWhoseSizeIsSmallerIsSkippedForThatMessageOnly) {
  FakeUpstream small(with_size(2000));
  FakeUpstream big(with_size(50000));
  RelaySettings settings;
  settings.upstreams = {plain_upstream("small", small.port()), plain_upstream("big", big.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();

  // A message that fits goes to the first endpoint, which so tells its SIZE.
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, message_of(500));
  ASSERT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(small.wait_for_transactions(1, 2s));

  // Without SIZE=: MAIL and RCPT reach the small one; the body, known at the final dot,
  // is too big for it, so the envelope goes to the big one, which takes the message.
  reply = client->send_message("a@example.test", {"c@example.test"}, message_of(5000));
  ASSERT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via big:"), std::string::npos) << reply.raw;
  ASSERT_TRUE(big.wait_for_transactions(1, 2s));
  EXPECT_EQ(big.transactions()[0].rcpt_to, std::vector<std::string>{"c@example.test"});
  EXPECT_EQ(big.transactions()[0].content, message_of(5000));

  // With SIZE=: the small one is not even asked.
  const std::size_t small_mails = small.transactions().size();
  EXPECT_EQ(client->command("MAIL FROM:<d@example.test> SIZE=5000").code, 250);
  EXPECT_EQ(client->command("RCPT TO:<e@example.test>").code, 250);
  EXPECT_EQ(client->command("DATA").code, 354);
  client->send_raw(message_of(5000) + ".\r\n");
  reply = client->read_reply();
  ASSERT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via big:"), std::string::npos) << reply.raw;
  EXPECT_FALSE(saw_command(small, "MAIL FROM:<d@example.test>"));
  EXPECT_EQ(small.transactions().size(), small_mails);

  // A small message still goes to the preferred small one.
  reply = client->send_message("a@example.test", {"f@example.test"}, message_of(800));
  ASSERT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via small:"), std::string::npos) << reply.raw;
}

TEST(RelayUpstreamSize, ThePortrelaySizeIsTheLargestAnEndpointTakesAndLargerIsRefused) {
  FakeUpstream first(with_size(2000));
  FakeUpstream second(with_size(3000));
  RelaySettings settings;
  settings.probe_interval = "30s";  // the start-up probe learns every endpoint's SIZE
  settings.upstreams = {plain_upstream("first", first.port()),
                        plain_upstream("second", second.port())};
  RelayUnderTest relay(settings);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (advertised_size(relay) != "3000" && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  ASSERT_EQ(advertised_size(relay), "3000");

  auto client = relay.client();
  SmtpReply reply = client->command("MAIL FROM:<a@example.test> SIZE=3001");
  EXPECT_EQ(reply.code, 552) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "5.3.4 ") << reply.raw;
  EXPECT_FALSE(saw_command(first, "MAIL"));
  EXPECT_FALSE(saw_command(second, "MAIL"));

  // No SIZE=: refused at the final dot; no upstream got DATA.
  reply = client->send_message("a@example.test", {"b@example.test"}, message_of(3500));
  EXPECT_EQ(reply.code, 552) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "5.3.4 ") << reply.raw;
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(saw_command(first, "DATA"));
  EXPECT_FALSE(saw_command(second, "DATA"));

  // 2500 octets: the second one only.
  reply = client->send_message("a@example.test", {"b@example.test"}, message_of(2500));
  ASSERT_EQ(reply.code, 250) << reply.raw;
  EXPECT_NE(reply.text.find("relayed via second:"), std::string::npos) << reply.raw;
  EXPECT_TRUE(first.transactions().empty());
}

TEST(RelayUpstreamSize, TheConfiguredMaximumBoundsWhatIsAdvertised) {
  FakeUpstream upstream(with_size(50000));
  RelaySettings settings;
  settings.probe_interval = "30s";
  settings.server_extra = "max_message_size = 10000";
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  ASSERT_TRUE(upstream.wait_for_connections(1, 2s));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(advertised_size(relay), "10000");
}

}  // namespace
}  // namespace portrelay::test
