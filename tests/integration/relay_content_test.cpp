// SMTP smuggling and malformed content: nothing ambiguous may reach the upstream.
#include "relay_harness.hpp"

namespace portrelay::test {
namespace {

using namespace std::string_view_literals;

struct SmugglingCase {
  const char* name;
  std::string_view end_marker;  // what a lenient server would take as the end of data
};

class RelayContentSmuggling : public ::testing::TestWithParam<SmugglingCase> {};

TEST_P(RelayContentSmuggling, RejectedAndNothingReachesTheUpstream) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();

  EXPECT_EQ(client->command("MAIL FROM:<attacker@example.test>").code, 250);
  EXPECT_EQ(client->command("RCPT TO:<victim@example.test>").code, 250);
  EXPECT_EQ(client->command("DATA").code, 354);
  std::string data = "Subject: innocent\r\n\r\nfirst message" + std::string(GetParam().end_marker) +
                     "MAIL FROM:<ceo@example.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n"
                     "Subject: smuggled\r\n\r\nsecond message\r\n.\r\n";
  client->send_raw(data);
  SmtpReply reply = client->read_reply();
  EXPECT_EQ(reply.code, 554) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "5.6.0 ") << reply.raw;

  // The session goes on: nothing of the smuggled text is executed as commands, and the next
  // message is relayed normally.
  SmtpReply next =
      client->send_message("good@example.test", {"rcpt@example.test"}, sample_message());
  EXPECT_EQ(next.code, 250) << next.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  std::this_thread::sleep_for(50ms);
  auto transactions = upstream.transactions();
  ASSERT_EQ(transactions.size(), 1u);
  EXPECT_EQ(transactions[0].mail_from, "good@example.test");
  EXPECT_EQ(transactions[0].content, sample_message());
  std::size_t data_commands = 0;
  for (const auto& commands : upstream.all_commands())
    for (const auto& command : commands) {
      EXPECT_EQ(command.find("ceo@"), std::string::npos) << command;
      if (command == "DATA") ++data_commands;
    }
  EXPECT_EQ(data_commands, 1u);  // only the good message's
  EXPECT_EQ(relay.metric("portrelay_messages_total", {{"result", "rejected"}}), 1);
}

INSTANTIATE_TEST_SUITE_P(
    Markers, RelayContentSmuggling,
    ::testing::Values(SmugglingCase{"LfDotLf", "\n.\n"}, SmugglingCase{"CrLfDotLf", "\r\n.\n"},
                      SmugglingCase{"LfDotCrLf", "\n.\r\n"}, SmugglingCase{"CrDotCr", "\r.\r"},
                      SmugglingCase{"CrDotCrLf", "\r.\r\n"}, SmugglingCase{"CrLfDotCr", "\r\n.\r"},
                      SmugglingCase{"BareLfInLine", "\nX\r\n"},
                      SmugglingCase{"BareCrInLine", "\rX\r\n"},
                      // Receivers that drop NUL octets see <CRLF>.<CRLF> in these.
                      SmugglingCase{"CrLfNulDotCrLf", "\r\n\0.\r\n"sv},
                      SmugglingCase{"CrLfDotNulCrLf", "\r\n.\0\r\n"sv},
                      SmugglingCase{"CrLfDotCrNulLf", "\r\n.\r\0\n"sv},
                      SmugglingCase{"NulInLine", "\0X\r\n"sv}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(RelayContent, SmugglingWithoutAnyUpstreamDataCommand) {
  // The rejected message is the only one: the upstream must never see DATA at all.
  FakeUpstream upstream;
  RelaySettings settings;
  // No pool: the upstream session ends with the client's, so every command it saw is
  // recorded once the upstream is idle.
  settings.relay_extra = "pool_max_per_endpoint = 0\n";
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  client->send_raw(
      "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"
      "Subject: x\r\n\r\nbody\n.\nMAIL FROM:<ceo@example.test>\r\n.\r\nQUIT\r\n");
  EXPECT_EQ(client->read_reply().code, 250);
  EXPECT_EQ(client->read_reply().code, 250);
  EXPECT_EQ(client->read_reply().code, 354);
  SmtpReply reply = client->read_reply();
  EXPECT_EQ(reply.code, 554) << reply.raw;
  EXPECT_EQ(client->read_reply().code, 221);
  EXPECT_TRUE(client->closed(2s));
  ASSERT_TRUE(upstream.wait_for_idle(2s));
  EXPECT_TRUE(upstream.transactions().empty());
  for (const auto& commands : upstream.all_commands())
    for (const auto& command : commands) {
      EXPECT_NE(command, "DATA");
      EXPECT_EQ(command.find("ceo@"), std::string::npos) << command;
    }
}

TEST(RelayContent, NulInCommandsIsRefusedAndNothingReachesTheUpstream) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply mail = client->command("MAIL FROM:<a@example.test>\0<ceo@example.test>"sv);
  EXPECT_EQ(mail.code, 500) << mail.raw;
  EXPECT_EQ(mail.text.substr(0, 6), "5.5.2 ") << mail.raw;
  SmtpReply ehlo = client->command("EHLO x\0y"sv);
  EXPECT_EQ(ehlo.code, 500) << ehlo.raw;
  EXPECT_EQ(client->command("NOOP").code, 250);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(upstream.connection_count(), 0u);
}

TEST(RelayContent, LineOf999OctetsIsRejected) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"},
                                         "Subject: x\r\n\r\n" + std::string(999, 'z') + "\r\n");
  EXPECT_EQ(reply.code, 554) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "5.6.0 ") << reply.raw;
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(upstream.transactions().empty());
  for (const auto& commands : upstream.all_commands())
    for (const auto& command : commands) EXPECT_NE(command, "DATA");
}

TEST(RelayContent, EmptyBodyIsRelayed) {
  FakeUpstream upstream;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  begin_data(*client);
  SmtpReply reply = client->command(".");
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream.transactions()[0].raw_data, "");
}

TEST(RelayContent, BodyWithoutFinalCrLfBeforeDotIsRelayedVerbatim) {
  // "text\r\n.\r\n" is the only way to end; a body whose last line lacks CRLF cannot exist
  // on the wire, so the relay must not invent or drop bytes around the terminator.
  FakeUpstream upstream;
  RelaySettings settings;
  settings.upstreams = {plain_upstream("a", upstream.port())};
  RelayUnderTest relay(settings);
  auto client = relay.client();
  begin_data(*client);
  client->send_raw("line one\r\n\r\n\r\n.\r\n");
  EXPECT_EQ(client->read_reply().code, 250);
  ASSERT_TRUE(upstream.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream.transactions()[0].raw_data, "line one\r\n\r\n\r\n");
}

}  // namespace
}  // namespace portrelay::test
