// Local limits and policy: size, recipients, line length, sequence, timeouts, allow-list.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <fstream>

#include "relay_harness.hpp"

namespace portrelay::test {
namespace {

class RelayLimits : public ::testing::Test {
 protected:
  RelayUnderTest& relay() {
    if (!relay_) {
      settings_.upstreams = {plain_upstream("a", upstream_.port())};
      relay_ = std::make_unique<RelayUnderTest>(settings_);
    }
    return *relay_;
  }
  bool upstream_saw(const std::string& prefix) {
    for (const auto& commands : upstream_.all_commands())
      for (const auto& command : commands)
        if (command.rfind(prefix, 0) == 0) return true;
    return false;
  }

  FakeUpstream upstream_;
  RelaySettings settings_;
  std::unique_ptr<RelayUnderTest> relay_;
};

TEST_F(RelayLimits, SizeParameterOverMaximumIs552AtMail) {
  settings_.server_extra = "max_message_size = 1000";
  auto client = relay().client();
  SmtpReply ehlo = client->command("EHLO again.test");
  EXPECT_NE(ehlo.text.find("SIZE 1000"), std::string::npos) << ehlo.raw;
  SmtpReply reply = client->command("MAIL FROM:<a@example.test> SIZE=1001");
  EXPECT_EQ(reply.code, 552) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "5.3.4 ") << reply.raw;
  EXPECT_EQ(upstream_.connection_count(), 0u);
  // At the limit it is fine, and SIZE is passed on to an upstream that supports it.
  EXPECT_EQ(client->command("MAIL FROM:<a@example.test> SIZE=1000").code, 250);
  ASSERT_TRUE(upstream_.wait_for_connections(1, 1s));
  EXPECT_TRUE(upstream_saw("MAIL FROM:<a@example.test> SIZE=1000"));
}

TEST_F(RelayLimits, BodyOverMaximumIs552AndNotRelayed) {
  settings_.server_extra = "max_message_size = 1000";
  auto client = relay().client();
  SmtpReply reply =
      client->send_message("a@example.test", {"b@example.test"},
                           std::string(600, 'a') + "\r\n" + std::string(600, 'b') + "\r\n");
  EXPECT_EQ(reply.code, 552) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "5.3.4 ") << reply.raw;
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(upstream_saw("DATA"));
  EXPECT_TRUE(upstream_.transactions().empty());
  // Exactly at the limit passes.
  std::string exact = std::string(998, 'c') + "\r\n";  // 1000 octets
  SmtpReply ok = client->send_message("a@example.test", {"b@example.test"}, exact);
  EXPECT_EQ(ok.code, 250) << ok.raw;
}

TEST_F(RelayLimits, TooManyRecipientsIs452) {
  settings_.server_extra = "max_recipients = 2";
  auto client = relay().client();
  EXPECT_EQ(client->command("MAIL FROM:<a@example.test>").code, 250);
  EXPECT_EQ(client->command("RCPT TO:<r1@example.test>").code, 250);
  EXPECT_EQ(client->command("RCPT TO:<r2@example.test>").code, 250);
  SmtpReply reply = client->command("RCPT TO:<r3@example.test>");
  EXPECT_EQ(reply.code, 452) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "4.5.3 ") << reply.raw;
  EXPECT_EQ(client->command("DATA").code, 354);
  client->send_raw(sample_message() + ".\r\n");
  EXPECT_EQ(client->read_reply().code, 250);
  ASSERT_TRUE(upstream_.wait_for_transactions(1, 2s));
  EXPECT_EQ(upstream_.transactions()[0].rcpt_to,
            (std::vector<std::string>{"r1@example.test", "r2@example.test"}));
}

TEST_F(RelayLimits, CommandLineTooLongIs500AndSessionContinues) {
  auto client = relay().client();
  // The limit is 2048 (ServerPolicy::max_command_line; RFC 5321 asks for at least 512).
  EXPECT_EQ(client->command("NOOP " + std::string(2000, 'x')).code, 250);
  SmtpReply reply = client->command("NOOP " + std::string(2100, 'x'));
  EXPECT_EQ(reply.code, 500) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "5.5.2 ") << reply.raw;
  EXPECT_EQ(client->command("NOOP").code, 250);
  // A long line that arrives in pieces (no newline yet) gets one reply too.
  client->send_raw("MAIL FROM:<" + std::string(4000, 'y'));
  std::this_thread::sleep_for(50ms);
  client->send_raw(std::string(4000, 'y') + "@example.test>\r\nNOOP\r\n");
  EXPECT_EQ(client->read_reply().code, 500);
  EXPECT_EQ(client->read_reply().code, 250);
  EXPECT_EQ(upstream_.connection_count(), 0u);
}

TEST_F(RelayLimits, BadSequenceIs503) {
  auto client = relay().client();
  SmtpReply rcpt = client->command("RCPT TO:<b@example.test>");
  EXPECT_EQ(rcpt.code, 503) << rcpt.raw;
  EXPECT_EQ(rcpt.text.substr(0, 6), "5.5.1 ") << rcpt.raw;
  SmtpReply data = client->command("DATA");
  EXPECT_EQ(data.code, 503) << data.raw;
  EXPECT_EQ(data.text.substr(0, 6), "5.5.1 ") << data.raw;
  EXPECT_EQ(upstream_.connection_count(), 0u);
}

TEST_F(RelayLimits, MailBeforeEhloIs503) {
  auto client = std::make_unique<SmtpTestClient>(5s);
  client->connect("127.0.0.1", relay().port());
  EXPECT_EQ(client->read_reply().code, 220);
  SmtpReply reply = client->command("MAIL FROM:<a@example.test>");
  EXPECT_EQ(reply.code, 503) << reply.raw;
  EXPECT_EQ(upstream_.connection_count(), 0u);
}

TEST_F(RelayLimits, ClientThatNeverReadsRepliesStopsBeingRead) {
  // Each "HELP" (6 octets) earns a ~90-octet reply. A client that pipelines them and never
  // reads must run into backpressure instead of growing the relay's write queue without end.
  relay();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  UniqueFd socket_fd(fd);
  int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  int send_buffer = 16384;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof(send_buffer));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(relay().port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  set_nonblocking(fd, true);
  std::string chunk;
  while (chunk.size() < 64 * 1024) chunk += "HELP\r\n";
  constexpr std::size_t kOffered = 3u << 20;  // would queue ~45 MiB of replies
  std::size_t accepted = 0;
  auto last_progress = std::chrono::steady_clock::now();
  while (accepted < kOffered && std::chrono::steady_clock::now() - last_progress < 300ms) {
    ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n > 0) {
      accepted += static_cast<std::size_t>(n);
      last_progress = std::chrono::steady_clock::now();
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      FAIL() << "send failed: " << errno;
    } else {
      std::this_thread::sleep_for(5ms);
    }
  }
  EXPECT_LT(accepted, kOffered) << "the relay kept reading commands whose replies pile up";
}

TEST_F(RelayLimits, NonReadingPipelinersCostBoundedMemoryEach) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "memory figures are meaningless under ASan's allocator and shadow memory";
#endif
  // Each "EHLO x" line earns a reply ~13 times its size. Clients that pipeline them and never
  // read must not make the relay (in this process) hold their replies: memory may grow by
  // the per-session bound (~150 KiB), not by megabytes per client.
  relay();
  constexpr int kClients = 30;
  // Resident memory of this process, which runs the relay on its DaemonThread.
  const auto resident_bytes = [] {
    std::ifstream status("/proc/self/status");
    std::string key;
    std::size_t kib = 0;
    while (status >> key)
      if (key == "VmRSS:" && status >> kib) break;
    return kib * 1024;
  };
  const std::size_t rss_before = resident_bytes();
  std::string chunk;
  while (chunk.size() < 64 * 1024) chunk += "EHLO flood.example\r\n";
  std::vector<UniqueFd> sockets;
  for (int i = 0; i < kClients; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    int small = 4096;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(relay().port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    set_nonblocking(fd, true);
    sockets.emplace_back(fd);
  }
  std::vector<std::size_t> sent(kClients, 0);
  auto last_progress = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - last_progress < 500ms) {
    bool progressed = false;
    for (int i = 0; i < kClients; ++i) {
      if (sent[i] >= (2u << 20)) continue;
      ssize_t n = ::send(sockets[i].get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
      if (n > 0) {
        sent[i] += static_cast<std::size_t>(n);
        progressed = true;
      }
    }
    if (progressed)
      last_progress = std::chrono::steady_clock::now();
    else
      std::this_thread::sleep_for(10ms);
  }
  const std::size_t rss_after = resident_bytes();
  const std::size_t growth = rss_after - std::min(rss_after, rss_before);
  EXPECT_LT(growth, kClients * (400u << 10))
      << "RSS grew by " << growth / 1024 << " KiB for " << kClients << " non-reading clients";
  // The relay still serves a client that reads.
  auto client = relay().client();
  EXPECT_EQ(client->command("NOOP").code, 250);
}

TEST_F(RelayLimits, IdleClientTimesOutWith421) {
  settings_.server_extra = "command_timeout = \"300ms\"";
  auto client = relay().client();
  auto started = std::chrono::steady_clock::now();
  SmtpReply reply = client->read_reply();
  auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(reply.code, 421) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "4.4.2 ") << reply.raw;
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 1500ms);
  EXPECT_TRUE(client->closed(2s));
}

TEST_F(RelayLimits, StalledDataTimesOutWith421AndNothingIsRelayed) {
  settings_.server_extra = "data_timeout = \"300ms\"";
  auto client = relay().client();
  begin_data(*client);
  client->send_raw("Subject: half\r\n\r\nhalf a mess");
  SmtpReply reply = client->read_reply();
  EXPECT_EQ(reply.code, 421) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "4.4.2 ") << reply.raw;
  EXPECT_TRUE(client->closed(2s));
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(upstream_.transactions().empty());
  EXPECT_FALSE(upstream_saw("DATA"));
}

TEST_F(RelayLimits, ClientOutsideAllowListIsRefused) {
  settings_.server_extra = "allow = [\"10.0.0.0/8\"]";
  SmtpTestClient client(5s);
  client.connect("127.0.0.1", relay().port());
  SmtpReply reply = client.read_reply();
  EXPECT_EQ(reply.code, 554) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "5.7.1 ") << reply.raw;
  EXPECT_TRUE(client.closed(2s));
  EXPECT_EQ(upstream_.connection_count(), 0u);
}

TEST_F(RelayLimits, CommandsPipelinedByARefusedClientAreIgnored) {
  settings_.server_extra = "allow = [\"10.0.0.0/8\"]";
  SmtpTestClient client(5s);
  client.connect("127.0.0.1", relay().port());
  client.send_raw(
      "EHLO x\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nhi\r\n.\r\n");
  EXPECT_EQ(client.read_reply().code, 554);
  EXPECT_TRUE(client.closed(2s));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(upstream_.connection_count(), 0u);
}

TEST_F(RelayLimits, SessionLimitRefusesTheExtraClient) {
  settings_.server_extra = "max_sessions = 1";
  auto first = relay().client();
  SmtpTestClient second(5s);
  second.connect("127.0.0.1", relay().port());
  SmtpReply reply = second.read_reply();
  EXPECT_EQ(reply.code, 421) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "4.7.0 ") << reply.raw;
  EXPECT_TRUE(second.closed(2s));
  EXPECT_EQ(first->command("NOOP").code, 250);
}

TEST_F(RelayLimits, EightBitAddressesAre553AndNeverReachTheUpstream) {
  // SMTPUTF8 is not offered, so neither MAIL nor RCPT may carry octets >= 0x80.
  auto client = relay().client();
  SmtpReply ehlo = client->command("EHLO again.test");
  EXPECT_EQ(ehlo.text.find("SMTPUTF8"), std::string::npos) << ehlo.raw;
  SmtpReply mail = client->command("MAIL FROM:<j\xc3\xbcrgen@example.test>");
  EXPECT_EQ(mail.code, 553) << mail.raw;
  EXPECT_EQ(mail.text.substr(0, 6), "5.6.7 ") << mail.raw;
  EXPECT_EQ(client->command("MAIL FROM:<a@example.test>").code, 250);
  SmtpReply rcpt = client->command(
      "RCPT TO:<b@ex\xfe\xff"
      "ample.test>");
  EXPECT_EQ(rcpt.code, 553) << rcpt.raw;
  EXPECT_EQ(rcpt.text.substr(0, 6), "5.6.7 ") << rcpt.raw;
  EXPECT_EQ(client->command("RSET").code, 250);
  std::this_thread::sleep_for(50ms);
  for (const auto& commands : upstream_.all_commands())
    for (const auto& command : commands)
      for (char c : command) EXPECT_LT(static_cast<unsigned char>(c), 0x80) << command;
}

TEST_F(RelayLimits, DrippedCommandLineTimesOutFromItsFirstByte) {
  // Slowloris: one byte every 60ms keeps the socket busy, but the line is not complete
  // within command_timeout of the last command, so the session ends with 421 4.4.2.
  settings_.server_extra = "command_timeout = \"500ms\"";
  auto client = relay().client();
  const std::string line = "MAIL FROM:<slow@example.test>\r\n";  // 31 octets: ~1.9 s
  const auto started = std::chrono::steady_clock::now();
  try {
    for (char c : line) {
      client->send_raw(std::string(1, c));
      std::this_thread::sleep_for(60ms);
    }
  } catch (const SmtpTestError&) {
    // The relay closed the connection while we were still dripping: expected.
  }
  SmtpReply reply = client->read_reply();
  EXPECT_EQ(reply.code, 421) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "4.4.2 ") << reply.raw;
  EXPECT_TRUE(client->closed(2s));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2500ms);
  EXPECT_EQ(upstream_.connection_count(), 0u);
}

TEST_F(RelayLimits, SessionsPerAddressAreLimited) {
  // Loopback is trusted (exempt) by default; an empty list holds it to the limit.
  settings_.server_extra = "max_sessions_per_address = 3\ntrusted_networks = []";
  std::vector<std::unique_ptr<SmtpTestClient>> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(relay().client());
  SmtpTestClient extra(5s);
  extra.connect("127.0.0.1", relay().port());
  SmtpReply reply = extra.read_reply();
  EXPECT_EQ(reply.code, 421) << reply.raw;
  EXPECT_EQ(reply.text.substr(0, 6), "4.7.0 ") << reply.raw;
  EXPECT_TRUE(extra.closed(2s));
  EXPECT_EQ(relay().metric("portrelay_client_sessions_refused_total", {{"reason", "per_address"}}),
            1);
  // A slot freed by QUIT can be used again.
  EXPECT_EQ(clients[0]->command("QUIT").code, 221);
  EXPECT_TRUE(clients[0]->closed(2s));
  std::unique_ptr<SmtpTestClient> next;
  for (int attempt = 0; attempt < 50 && !next; ++attempt) {
    auto candidate = std::make_unique<SmtpTestClient>(5s);
    candidate->connect("127.0.0.1", relay().port());
    if (candidate->read_reply().code == 220)
      next = std::move(candidate);
    else
      std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(next) << "the freed slot was never given back";
  EXPECT_EQ(next->command("EHLO again.test").code, 250);
}

TEST_F(RelayLimits, IdleSessionBeforeMailIsShedForANewClient) {
  // Full at max_sessions: the session that has sat without a command for longest (and has
  // not sent MAIL) makes room; the one inside a transaction is kept.
  // One loop: a loop sheds only its own idle sessions.
  settings_.server_extra = "max_sessions = 3\nworkers = 1";
  auto busy = relay().client();
  EXPECT_EQ(busy->command("MAIL FROM:<a@example.test>").code, 250);
  auto stalest = relay().client();
  std::this_thread::sleep_for(300ms);
  auto idle = relay().client();
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(idle->command("NOOP").code, 250);  // progress: no longer the stalest
  SmtpTestClient newcomer(5s);
  newcomer.connect("127.0.0.1", relay().port());
  SmtpReply greeting = newcomer.read_reply();
  EXPECT_EQ(greeting.code, 220) << greeting.raw;
  SmtpReply shed = stalest->read_reply();
  EXPECT_EQ(shed.code, 421) << shed.raw;
  EXPECT_EQ(shed.text.substr(0, 6), "4.7.0 ") << shed.raw;
  EXPECT_TRUE(stalest->closed(2s));
  EXPECT_EQ(idle->command("NOOP").code, 250);
  EXPECT_EQ(busy->command("RCPT TO:<b@example.test>").code, 250);
  EXPECT_EQ(relay().metric("portrelay_client_sessions_shed_total"), 1);
}

TEST_F(RelayLimits, SessionsBeforeMailHaveTheirOwnLimit) {
  settings_.server_extra = "max_sessions_before_mail = 2";
  auto first = relay().client();
  auto second = relay().client();
  // Both are fresh (idle for less than a second): nobody is shed, the newcomer is refused.
  SmtpTestClient refused(5s);
  refused.connect("127.0.0.1", relay().port());
  EXPECT_EQ(refused.read_reply().code, 421);
  // A session that sent MAIL no longer counts, so the next client gets in.
  EXPECT_EQ(first->command("MAIL FROM:<a@example.test>").code, 250);
  auto third = relay().client();
  EXPECT_EQ(third->command("NOOP").code, 250);
  EXPECT_EQ(relay().metric("portrelay_client_sessions_refused_total", {{"reason", "max_sessions"}}),
            1);
}

TEST_F(RelayLimits, UnsupportedMailParameterIs555) {
  auto client = relay().client();
  SmtpReply reply = client->command("MAIL FROM:<a@example.test> SMTPUTF8");
  EXPECT_EQ(reply.code, 555) << reply.raw;
  EXPECT_EQ(upstream_.connection_count(), 0u);
}

}  // namespace
}  // namespace portrelay::test
