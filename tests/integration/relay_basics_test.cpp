// The happy path over real sockets: what the client submits is exactly what the upstream gets.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay_harness.hpp"

namespace portrelay::test {
namespace {

class RelayBasics : public ::testing::Test {
 protected:
  RelayBasics() { settings_.upstreams = {plain_upstream("a", upstream_.port())}; }
  RelayUnderTest& relay() {
    if (!relay_) relay_ = std::make_unique<RelayUnderTest>(settings_);
    return *relay_;
  }

  FakeUpstream upstream_;
  RelaySettings settings_;
  std::unique_ptr<RelayUnderTest> relay_;
};

TEST_F(RelayBasics, DeliversDotLeadingLinesStuffedOnTheWire) {
  auto client = relay().client();
  const std::string content =
      "Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nnot the end\r\n. space\r\nlast\r\n";
  SmtpReply reply = client->send_message("alice@example.test", {"bob@example.test"}, content);
  EXPECT_EQ(reply.code, 250) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "2.0.0 ") << reply.raw;
  EXPECT_NE(reply.text.find("relayed via a:" + std::to_string(upstream_.port())), std::string::npos)
      << reply.raw;

  ASSERT_TRUE(upstream_.wait_for_transactions(1, 2s));
  auto transaction = upstream_.transactions().at(0);
  EXPECT_EQ(transaction.mail_from, "alice@example.test");
  EXPECT_EQ(transaction.rcpt_to, std::vector<std::string>{"bob@example.test"});
  EXPECT_EQ(transaction.content, content);
  EXPECT_EQ(transaction.raw_data,
            "Subject: dots\r\n\r\n..leading dot\r\n...two dots\r\n..\r\nnot the end\r\n.. "
            "space\r\nlast\r\n");
  EXPECT_EQ(relay().metric("portrelay_messages_total", {{"result", "relayed"}}), 1);
  EXPECT_EQ(relay().metric("portrelay_upstream_connect_attempts_total", {{"upstream", "a"}}), 1);
}

TEST_F(RelayBasics, NullSenderIsRelayed) {
  auto client = relay().client();
  SmtpReply reply = client->send_message("", {"bounce@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream_.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream_.transactions().at(0).mail_from, "");
  auto commands = upstream_.commands(0);
  EXPECT_NE(std::find(commands.begin(), commands.end(), "MAIL FROM:<>"), commands.end());
}

TEST_F(RelayBasics, EightBitBodyKeepsEveryOctetAndBodyParameter) {
  auto client = relay().client();
  std::string body = "Subject: 8bit\r\n\r\n";
  for (int line = 0; line < 4; ++line) {
    for (int c = 0x80; c <= 0xff; ++c) body += static_cast<char>(c);
    body += "\r\n";
  }
  body += "caf\xc3\xa9 \x01\x7f\t\r\n";
  EXPECT_EQ(client->command("MAIL FROM:<a@example.test> BODY=8BITMIME").code, 250);
  EXPECT_EQ(client->command("RCPT TO:<b@example.test>").code, 250);
  EXPECT_EQ(client->command("DATA").code, 354);
  client->send_raw(body + ".\r\n");
  SmtpReply reply = client->read_reply();
  EXPECT_EQ(reply.code, 250) << reply.raw;

  ASSERT_TRUE(upstream_.wait_for_transactions(1, 2s));
  auto transaction = upstream_.transactions().at(0);
  EXPECT_EQ(transaction.raw_data, body);
  EXPECT_EQ(transaction.mail_params, "BODY=8BITMIME");
}

TEST_F(RelayBasics, LineOfExactly998OctetsIsAccepted) {
  auto client = relay().client();
  std::string content = "Subject: long\r\n\r\n" + std::string(998, 'x') + "\r\n" + "." +
                        std::string(997, 'y') + "\r\n";  // 998 after unstuffing too
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, content);
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream_.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream_.transactions().at(0).content, content);
}

TEST_F(RelayBasics, TwentyMebibyteMessageArrivesByteExact) {
  auto client = relay().client(20s);
  std::string content = "Subject: big\r\n\r\n";
  content.reserve((20u << 20) + 4096);
  std::size_t line_number = 0;
  while (content.size() < (20u << 20)) {
    // Varying lengths, some dot-leading, so stuffing is exercised across chunk boundaries.
    std::size_t length = 1 + (line_number * 7919) % 997;
    std::string line(length, static_cast<char>('a' + line_number % 26));
    if (line_number % 13 == 0) line[0] = '.';
    content += line + "\r\n";
    ++line_number;
  }
  SmtpReply reply = client->send_message("a@example.test", {"b@example.test"}, content);
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream_.wait_for_transactions(1, 5s));
  auto transaction = upstream_.transactions().at(0);
  ASSERT_EQ(transaction.content.size(), content.size());
  EXPECT_TRUE(transaction.content == content) << "content differs";
  EXPECT_EQ(relay().metric("portrelay_message_size_bytes_sum"), content.size());
}

TEST_F(RelayBasics, MultipleRecipientsInOrder) {
  auto client = relay().client();
  std::vector<std::string> recipients = {"one@example.test", "two@example.test",
                                         "three@example.org"};
  SmtpReply reply = client->send_message("a@example.test", recipients, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream_.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream_.transactions().at(0).rcpt_to, recipients);
}

TEST_F(RelayBasics, TwoMessagesOnOneClientConnection) {
  auto client = relay().client();
  EXPECT_EQ(
      client->send_message("a@example.test", {"b@example.test"}, sample_message("first")).code,
      250);
  EXPECT_EQ(
      client->send_message("c@example.test", {"d@example.test"}, sample_message("second")).code,
      250);
  EXPECT_EQ(client->command("QUIT").code, 221);
  ASSERT_TRUE(upstream_.wait_for_transactions(2, 2s));
  auto transactions = upstream_.transactions();
  EXPECT_EQ(transactions[0].mail_from, "a@example.test");
  EXPECT_EQ(transactions[0].content, sample_message("first"));
  EXPECT_EQ(transactions[1].mail_from, "c@example.test");
  EXPECT_EQ(transactions[1].rcpt_to, std::vector<std::string>{"d@example.test"});
  EXPECT_EQ(transactions[1].content, sample_message("second"));
  // The upstream session is kept for the second message.
  EXPECT_EQ(upstream_.connection_count(), 1u);
  EXPECT_EQ(relay().metric("portrelay_messages_total", {{"result", "relayed"}}), 2);
}

TEST_F(RelayBasics, PipelinedEnvelopeInOneWrite) {
  auto client = relay().client();
  client->send_raw(
      "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<c@example.test>\r\n"
      "DATA\r\n");
  EXPECT_EQ(client->read_reply().code, 250);
  EXPECT_EQ(client->read_reply().code, 250);
  EXPECT_EQ(client->read_reply().code, 250);
  EXPECT_EQ(client->read_reply().code, 354);
  client->send_raw(sample_message() + ".\r\n");
  EXPECT_EQ(client->read_reply().code, 250);
  ASSERT_TRUE(upstream_.wait_for_transactions(1, 2s));
  auto transaction = upstream_.transactions().at(0);
  EXPECT_EQ(transaction.rcpt_to, (std::vector<std::string>{"b@example.test", "c@example.test"}));
  EXPECT_EQ(transaction.content, sample_message());
}

TEST_F(RelayBasics, WholeTransactionAndQuitInOneWrite) {
  auto client = relay().client();
  client->send_raw("MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n" +
                   sample_message() + ".\r\nQUIT\r\n");
  EXPECT_EQ(client->read_reply().code, 250);
  EXPECT_EQ(client->read_reply().code, 250);
  EXPECT_EQ(client->read_reply().code, 354);
  SmtpReply end = client->read_reply();
  EXPECT_EQ(end.code, 250) << end.raw;
  EXPECT_EQ(client->read_reply().code, 221);
  EXPECT_TRUE(client->closed(2s));
  ASSERT_TRUE(upstream_.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream_.transactions().at(0).content, sample_message());
}

TEST_F(RelayBasics, RsetAbandonsTheUpstreamTransaction) {
  auto client = relay().client();
  EXPECT_EQ(client->command("MAIL FROM:<old@example.test>").code, 250);
  EXPECT_EQ(client->command("RCPT TO:<old-rcpt@example.test>").code, 250);
  EXPECT_EQ(client->command("RSET").code, 250);
  SmtpReply reply =
      client->send_message("new@example.test", {"new-rcpt@example.test"}, sample_message());
  EXPECT_EQ(reply.code, 250) << reply.raw;
  ASSERT_TRUE(upstream_.wait_for_transactions(1, 2s));
  auto transactions = upstream_.transactions();
  ASSERT_EQ(transactions.size(), 1u);
  EXPECT_EQ(transactions[0].mail_from, "new@example.test");
  EXPECT_EQ(transactions[0].rcpt_to, std::vector<std::string>{"new-rcpt@example.test"});
}

TEST_F(RelayBasics, SessionGaugeFollowsClients) {
  auto client = relay().client();
  EXPECT_EQ(relay().metric("portrelay_client_sessions_active"), 1);
  EXPECT_EQ(client->command("QUIT").code, 221);
  EXPECT_TRUE(client->closed(2s));
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (relay().metric("portrelay_client_sessions_active") != 0 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(relay().metric("portrelay_client_sessions_active"), 0);
}

// Plain HTTP/1.0 GET over a blocking socket; returns the whole response.
std::string http_get(std::uint16_t port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    std::string request =
        "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    (void)!::write(fd, request.data(), request.size());
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
  }
  ::close(fd);
  return response;
}

TEST_F(RelayBasics, MetricsEndpointServesCounters) {
  settings_.metrics = "listen = \"127.0.0.1:0\"";
  auto client = relay().client();
  EXPECT_EQ(client->send_message("a@example.test", {"b@example.test"}, sample_message()).code, 250);
  ASSERT_NE(relay().daemon().metrics_port(), 0);
  std::string response = http_get(relay().daemon().metrics_port(), "/metrics");
  EXPECT_NE(response.find("200"), std::string::npos) << response.substr(0, 200);
  EXPECT_EQ(metric_value(response, "portrelay_messages_total", {{"result", "relayed"}}), 1)
      << response;
  EXPECT_EQ(metric_value(response, "portrelay_upstream_up", {{"upstream", "a"}}), 1);
}

}  // namespace
}  // namespace portrelay::test
