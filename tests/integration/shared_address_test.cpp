// Every local application reaches the relay from 127.0.0.1, so a per-address session cap on
// loopback is one budget for all of them (issue 16, item 4: with the default cap of 100,
// 300 concurrent local submissions lost 45, and a legitimate client got 421 while idle
// connections, non-reading pipeliners or AUTH guessers held the address's slots).
// Loopback and [server] trusted_networks are exempt from max_sessions_per_address; the
// global limits shed the stalest idle session before refusing anyone, and an untrusted
// address at its cap sheds its own stalest idle session.
#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "portrelay/demo/test_pki.hpp"
#include "portrelay/server/password_hash.hpp"
#include "relay_harness.hpp"
#include "support/base64.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::test {
namespace {

// Raises this process's soft RLIMIT_NOFILE (both ends of every connection live here: the
// clients and the relay on its DaemonThread) and restores it on destruction.
class OpenFilesLimit {
 public:
  explicit OpenFilesLimit(rlim_t wanted) {
    getrlimit(RLIMIT_NOFILE, &saved_);
    if (saved_.rlim_cur >= wanted) {
      ok_ = true;
      return;
    }
    if (saved_.rlim_max != RLIM_INFINITY && saved_.rlim_max < wanted) return;
    rlimit raised = saved_;
    raised.rlim_cur = wanted;
    ok_ = setrlimit(RLIMIT_NOFILE, &raised) == 0;
  }
  ~OpenFilesLimit() { setrlimit(RLIMIT_NOFILE, &saved_); }
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

std::size_t resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  std::size_t kib = 0;
  while (status >> key)
    if (key == "VmRSS:" && status >> kib) break;
  return kib * 1024;
}

// Input the relay has not read yet, by the client's port, from the relay's accepted
// sockets (they live in this process, on the DaemonThread).
std::map<std::uint16_t, int> unread_by_relay(std::uint16_t relay_port) {
  std::map<std::uint16_t, int> unread;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::atoi(entry.path().filename().c_str());
    sockaddr_in local{};
    sockaddr_in peer{};
    socklen_t length = sizeof(local);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0 ||
        local.sin_family != AF_INET || ntohs(local.sin_port) != relay_port)
      continue;
    length = sizeof(peer);
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) continue;
    int pending = 0;
    if (::ioctl(fd, SIOCINQ, &pending) == 0) unread[ntohs(peer.sin_port)] = pending;
  }
  return unread;
}

// A TCP connection to the relay from a chosen loopback source address (127.0.0.2, ...),
// which SmtpTestClient cannot pick. Reads single-line replies only.
class SourcedClient {
 public:
  SourcedClient(const std::string& source, std::uint16_t port) {
    fd_ = UniqueFd(::socket(AF_INET, SOCK_STREAM, 0));
    if (!fd_.valid()) throw SmtpTestError("socket failed");
    timeval timeout{5, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, source.c_str(), &local.sin_addr);
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0)
      throw SmtpTestError("bind to " + source + " failed");
    const SocketAddress relay = make_address("127.0.0.1", port);
    if (::connect(fd_.get(), relay.get(), relay.length) != 0) throw SmtpTestError("connect failed");
  }
  // The code of the next reply line, or 0 if the connection closed or timed out first.
  int reply_code() {
    std::string line;
    char c = 0;
    while (line.size() < 1024 && ::recv(fd_.get(), &c, 1, 0) == 1) {
      line += c;
      if (c == '\n') return line.size() >= 4 && line[3] == ' ' ? std::stoi(line.substr(0, 3)) : 0;
    }
    return 0;
  }
  int command(const std::string& line) {
    const std::string bytes = line + "\r\n";
    if (::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(bytes.size()))
      return 0;
    return reply_code();
  }

 private:
  UniqueFd fd_;
};

class SharedAddress : public ::testing::Test {
 protected:
  SharedAddress() {
    // Nothing here is meant to fail upstream: the shipped timeouts' order of magnitude, so
    // a loop kept busy by a flood on a loaded machine is not mistaken for a dead upstream.
    settings_.connect_timeout = "5s";
    settings_.greeting_timeout = "5s";
    settings_.command_timeout = "10s";
    settings_.data_timeout = "10s";
  }
  RelayUnderTest& relay() {
    if (!relay_) {
      settings_.upstreams = {plain_upstream("a", upstream_.port())};
      relay_ = std::make_unique<RelayUnderTest>(settings_);
    }
    return *relay_;
  }
  double refused() { return relay().metric("portrelay_client_sessions_refused_total"); }
  double shed() { return relay().metric("portrelay_client_sessions_shed_total"); }
  // A local application's whole submission, as a fresh client.
  void expect_legitimate_client_served(const std::string& when) {
    SmtpTestClient client(10s);
    client.connect("127.0.0.1", relay().port());
    SmtpReply greeting = client.read_reply();
    ASSERT_EQ(greeting.code, 220) << when << ": " << greeting.raw;
    ASSERT_EQ(client.command("EHLO app.test").code, 250) << when;
    const auto started = std::chrono::steady_clock::now();
    SmtpReply reply =
        client.send_message("app@example.test", {"rcpt@example.test"}, sample_message(when));
    EXPECT_EQ(reply.code, 250) << when << ": " << reply.raw;
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s) << when;
  }

  FakeUpstream upstream_;
  RelaySettings settings_;  // the shipped limits: nothing about sessions is overridden
  std::unique_ptr<RelayUnderTest> relay_;
};

TEST_F(SharedAddress, ThreeHundredConcurrentLocalSubmissionsAreAllRelayed) {
  constexpr int kClients = 300;
  OpenFilesLimit descriptors(4 * kClients + 256);  // client, session, upstream both ends
  ASSERT_TRUE(descriptors.ok()) << "RLIMIT_NOFILE's hard limit is below " << 4 * kClients + 256;
  const std::uint16_t port = relay().port();
  std::vector<int> greetings(kClients, 0);
  std::vector<int> results(kClients, 0);
  std::atomic<int> greeted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i]() {
      try {
        SmtpTestClient client(30s);
        client.connect("127.0.0.1", port);
        greetings[i] = client.read_reply().code;
        ++greeted;
        // Everyone holds a session before anyone sends: 300 at once from one address.
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        while (greeted < kClients && std::chrono::steady_clock::now() < deadline)
          std::this_thread::sleep_for(2ms);
        if (greetings[i] != 220) return;
        if (client.command("EHLO app" + std::to_string(i) + ".test").code != 250) return;
        results[i] = client
                         .send_message("app@example.test", {"rcpt@example.test"},
                                       sample_message("concurrent " + std::to_string(i)))
                         .code;
      } catch (const SmtpTestError&) {
        ++greeted;  // a failed client must not hold the others at the barrier
      }
    });
  }
  for (auto& thread : threads) thread.join();
  int acknowledged = 0;
  std::string others;  // client:code of those that got no 250
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(greetings[i], 220) << "client " << i;
    if (results[i] == 250)
      ++acknowledged;
    else
      others += " " + std::to_string(i) + ":" + std::to_string(results[i]);
  }
  EXPECT_EQ(acknowledged, kClients) << others;
  EXPECT_EQ(refused(), 0);
  EXPECT_EQ(upstream_.transactions().size(), static_cast<std::size_t>(kClients));
}

TEST_F(SharedAddress, LegitimateClientIsServedWhileAThousandIdleLocalConnectionsAreOpen) {
  constexpr int kIdle = 1000;
  OpenFilesLimit descriptors(2 * kIdle + 256);
  ASSERT_TRUE(descriptors.ok()) << "RLIMIT_NOFILE's hard limit is below " << 2 * kIdle + 256;
  relay();
  std::vector<UniqueFd> idle;
  for (int i = 0; i < kIdle; ++i) {
    ConnectOutcome outcome = connect_with_timeout("127.0.0.1", relay().port(), 5s);
    ASSERT_EQ(outcome.result, ConnectResult::kConnected) << "idle connection " << i;
    idle.push_back(std::move(outcome.fd));
  }
  // Past the shedding threshold (1 s without a command) for all of them.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(relay().metric("portrelay_client_sessions_refused_total", {{"reason", "per_address"}}),
            0);
  const double shed_before = shed();
  expect_legitimate_client_served("1000 idle local connections");
  // Room was made by closing one idle session, not by refusing the newcomer.
  EXPECT_EQ(shed() - shed_before, 1);
  EXPECT_GE(relay().metric("portrelay_client_sessions_active"), 499);
}

TEST_F(SharedAddress, LegitimateClientIsServedWhileAHundredLocalClientsPipelineWithoutReading) {
  constexpr int kPipeliners = 100;
  constexpr std::size_t kOffered = 1000u << 10;  // whole lines; would earn ~13 MiB of replies
  OpenFilesLimit descriptors(2 * kPipeliners + 256);
  ASSERT_TRUE(descriptors.ok());
  relay();
  [[maybe_unused]] const std::size_t rss_before = resident_bytes();
  std::string chunk;
  while (chunk.size() < 64 * 1024) chunk += "EHLO flood.example\r\n";  // 20 octets each
  std::vector<UniqueFd> sockets;
  for (int i = 0; i < kPipeliners; ++i) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
    ASSERT_TRUE(fd.valid());
    int small = 4096;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    int send_buffer = 16384;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof(send_buffer));
    const SocketAddress address = make_address("127.0.0.1", relay().port());
    ASSERT_EQ(::connect(fd.get(), address.get(), address.length), 0) << "pipeliner " << i;
    set_nonblocking(fd.get(), true);
    sockets.push_back(std::move(fd));
  }
  // Send until nobody has made progress for 3 s (the relay stopped reading them all), or
  // 30 s at most. The window is long because the relay's loop runs in this process beside
  // a busy machine: a short one ended the sending while the relay had not yet run, and the
  // relay then read all that little (its kernel send buffer took the replies).
  std::vector<std::size_t> sent(kPipeliners, 0);
  const auto give_up = std::chrono::steady_clock::now() + 30s;
  auto last_progress = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - last_progress < 3s &&
         std::chrono::steady_clock::now() < give_up) {
    bool progressed = false;
    for (int i = 0; i < kPipeliners; ++i) {
      if (sent[i] >= kOffered) continue;
      // Whole lines only, however the kernel splits the sends: well-formed commands that
      // the relay has no reason to close the connection for.
      const std::size_t offset = sent[i] % chunk.size();
      ssize_t n = ::send(sockets[i].get(), chunk.data() + offset,
                         std::min(chunk.size() - offset, kOffered - sent[i]), MSG_NOSIGNAL);
      if (n > 0) {
        sent[i] += static_cast<std::size_t>(n);
        progressed = true;
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        FAIL() << "pipeliner " << i << " was cut off: errno " << errno;
      }
    }
    if (progressed)
      last_progress = std::chrono::steady_clock::now();
    else
      std::this_thread::sleep_for(10ms);
  }
  // Each ran into the per-session caps (16 KiB of unsent replies, 16 KiB of buffered
  // input), and the relay stopped reading it: once the relay has caught up with what it
  // did read, input is still waiting, unread, in every one of its sockets.
  std::this_thread::sleep_for(1s);
  const auto unread = unread_by_relay(relay().port());
  for (int i = 0; i < kPipeliners; ++i) {
    const auto found = unread.find(local_port(sockets[i].get()));
    ASSERT_NE(found, unread.end()) << "pipeliner " << i << " was disconnected";
    EXPECT_GT(found->second, 0) << "the relay kept reading pipeliner " << i;
  }
  // Memory figures are meaningless under ASan's allocator and shadow memory.
#if !defined(__SANITIZE_ADDRESS__)
  const std::size_t rss_after = resident_bytes();
  const std::size_t growth = rss_after - std::min(rss_after, rss_before);
  EXPECT_LT(growth, kPipeliners * (400u << 10))
      << "RSS grew by " << growth / 1024 << " KiB for " << kPipeliners << " pipeliners";
#endif
  expect_legitimate_client_served("100 non-reading pipeliners");
  EXPECT_EQ(refused(), 0);
}

TEST_F(SharedAddress, LegitimateClientIsServedWhileAHundredSixtyLocalAuthGuessersRun) {
  constexpr int kGuessers = 160;
  OpenFilesLimit descriptors(2 * kGuessers + 256);
  ASSERT_TRUE(descriptors.ok());
  TempDir dir("portrelay-shared-address");
  auto pki = tls::generate_test_pki(dir.path());
  const std::string users =
      dir.write_file("users", "app:" + server::hash_password("right-password") + "\n");
  // AUTH is offered (over STARTTLS) on the one loopback listener, as in a deployment that
  // lets some local applications authenticate; the legitimate client does not need to.
  settings_.server_extra = "tls_cert = \"" + pki.good_cert + "\"\ntls_key = \"" + pki.good_key +
                           "\"\nusers_file = \"" + users + "\"\nauth_failure_delay = \"20ms\"\n";
  const std::uint16_t port = relay().port();
  std::atomic<bool> stop{false};
  std::atomic<int> connected{0};
  std::atomic<int> greeting_refusals{0};
  std::atomic<int> auth_replies{0};
  std::vector<std::thread> guessers;
  for (int i = 0; i < kGuessers; ++i) {
    guessers.emplace_back([&, i]() {
      const std::string wrong =
          "AUTH PLAIN " + base64_encode(std::string("\0app\0wrong", 10) + std::to_string(i));
      bool counted = false;
      while (!stop) {
        try {
          SmtpTestClient client(10s);
          client.connect("127.0.0.1", port);
          const int greeting = client.read_reply().code;
          if (!counted) {
            counted = true;
            ++connected;
          }
          if (greeting != 220) {
            ++greeting_refusals;
            std::this_thread::sleep_for(20ms);
            continue;
          }
          client.command("EHLO guesser.test");
          client.starttls({pki.ca_cert, "localhost"});
          client.command("EHLO guesser.test");
          while (!stop) {
            const int code = client.command(wrong).code;
            ++auth_replies;
            if (code != 535 && code != 454) break;  // 421 after too many failures
          }
        } catch (const SmtpTestError&) {
          // Closed by the relay: connect again.
        }
      }
    });
  }
  // Every guesser has connected once, and the lockout delays have built up.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (connected < kGuessers && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(500ms);
  for (int i = 0; i < 3; ++i) expect_legitimate_client_served("160 AUTH guessers");
  stop = true;
  for (auto& thread : guessers) thread.join();
  EXPECT_EQ(connected.load(), kGuessers);
  EXPECT_EQ(greeting_refusals.load(), 0);
  EXPECT_EQ(refused(), 0);
  EXPECT_GT(auth_replies.load(), kGuessers) << "the guessers did not run";
  // The AUTH failure delay still applies to loopback: the guessers share one record.
  EXPECT_GT(relay().metric("portrelay_auth_failures_total"), 0);
}

TEST_F(SharedAddress, UntrustedAddressAtItsCapShedsItsOwnStalestIdleSession) {
  // Loopback is not trusted here except 127.0.0.2, so 127.0.0.1 is held to 3 sessions.
  // One loop: a loop sheds only its own idle sessions.
  settings_.server_extra =
      "max_sessions_per_address = 3\ntrusted_networks = [\"127.0.0.2/32\"]\nworkers = 1\n";
  relay();
  // The stalest session of all, from a trusted address: not 127.0.0.1's to shed.
  SourcedClient other("127.0.0.2", relay().port());
  ASSERT_EQ(other.reply_code(), 220);
  std::this_thread::sleep_for(100ms);
  auto oldest = relay().client();
  auto busy = relay().client();
  EXPECT_EQ(busy->command("MAIL FROM:<a@example.test>").code, 250);  // engaged: never shed
  auto idle = relay().client();
  std::this_thread::sleep_for(1100ms);
  // 127.0.0.1 is at its cap: its stalest idle session makes room.
  auto newcomer = relay().client();
  SmtpReply shed_reply = oldest->read_reply();
  EXPECT_EQ(shed_reply.code, 421) << shed_reply.raw;
  EXPECT_EQ(shed_reply.text.substr(0, 6), "4.7.0 ") << shed_reply.raw;
  EXPECT_TRUE(oldest->closed(2s));
  EXPECT_EQ(other.command("NOOP"), 250);
  // Again: `idle` is next.
  auto second = relay().client();
  EXPECT_EQ(idle->read_reply().code, 421);
  // Now 127.0.0.1's sessions are busy or fresh: the next one is refused.
  SmtpTestClient refused_client(5s);
  refused_client.connect("127.0.0.1", relay().port());
  SmtpReply refusal = refused_client.read_reply();
  EXPECT_EQ(refusal.code, 421) << refusal.raw;
  EXPECT_NE(refusal.text.find("from your address"), std::string::npos) << refusal.raw;
  // Closed a loop turn after the refusal was counted (the 421 may arrive before that).
  EXPECT_TRUE(refused_client.closed(2s));
  EXPECT_EQ(relay().metric("portrelay_client_sessions_refused_total", {{"reason", "per_address"}}),
            1);
  EXPECT_EQ(shed(), 2);
  EXPECT_EQ(busy->command("RCPT TO:<b@example.test>").code, 250);
  EXPECT_EQ(newcomer->command("NOOP").code, 250);
  // The trusted address is not held to the cap at all.
  std::vector<std::unique_ptr<SourcedClient>> trusted;
  for (int i = 0; i < 5; ++i) {
    trusted.push_back(std::make_unique<SourcedClient>("127.0.0.2", relay().port()));
    EXPECT_EQ(trusted.back()->reply_code(), 220) << "trusted client " << i;
  }
}

}  // namespace
}  // namespace portrelay::test
