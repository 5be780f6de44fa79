#pragma once
// Scriptable SMTP server playing the upstream provider in tests. Plain POSIX sockets and one
// thread per connection, independent of the libuv code under test. Binds an ephemeral
// loopback port; the destructor stops everything (threads joined, sockets closed).
//
// Normal behaviour: multi-line 250 to EHLO (250 to HELO), 250 2.1.0 to MAIL, 250 2.1.5 to
// RCPT, 354 to DATA, "250 2.0.0 Ok: queued as <n>" after the final dot, 250 to RSET/NOOP,
// 221 to QUIT, 502 to anything else; 503 5.5.1 for commands out of sequence. Commands may be
// pipelined; replies go out in order. Any reply with code 421 is followed by a close.
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/socket_util.hpp"
#include "support/tls_channel.hpp"

namespace portrelay::test {

// Points of the SMTP dialogue whose answer a test can replace.
enum class SmtpStage {
  kGreeting,  // on connect
  kEhlo,      // EHLO and HELO
  kMail,
  kRcpt,
  kData,     // the DATA command itself; a 354 override still enters data mode
  kDataEnd,  // after the terminating dot
  kRset,
  kNoop,
  kQuit,
  kStartTls,  // a 220 override still starts the handshake
  kAuth,      // final answer after the credentials were received
};

// What the server does at a stage instead of its normal reply.
struct StageAction {
  enum class Kind { kReply, kClose, kHang };

  Kind kind = Kind::kReply;
  std::string reply;                   // e.g. "550 5.1.1 No such user"; "\n" separates lines
  std::chrono::milliseconds delay{0};  // waited before replying or closing (timeout tests)
  int times = 0;                       // how many uses before it expires; 0 = forever

  static StageAction reply_with(std::string reply);
  static StageAction delayed(std::chrono::milliseconds delay, std::string reply);
  // Close the TCP connection without replying.
  static StageAction close_connection(std::chrono::milliseconds delay = {});
  // Say nothing until the server stops (the peer's timeout has to fire).
  static StageAction hang();
  // Same action, expiring after `n` uses (counted over all connections).
  StageAction only(int n) const;
};

struct FakeUpstreamConfig {
  std::string host = "127.0.0.1";  // or "::1"
  std::uint16_t port = 0;          // 0: an ephemeral one; else e.g. a refused port coming back
  std::string greeting = "220 fake.upstream ESMTP";
  std::chrono::milliseconds greeting_delay{0};
  bool send_greeting = true;  // false: accept, then never say anything
  std::vector<std::string> ehlo_lines = {"fake.upstream", "PIPELINING", "SIZE 52428800", "8BITMIME",
                                         "ENHANCEDSTATUSCODES"};
  std::map<SmtpStage, StageAction> overrides;
  // Per-recipient RCPT answers (address without <>, compared case-insensitively); these win
  // over overrides[kRcpt].
  std::map<std::string, StageAction> rcpt_overrides;

  // TLS: cert_file/key_file (PEM) are required when either mode is on.
  std::string cert_file;
  std::string key_file;
  bool implicit_tls = false;    // handshake right after accept (port 465 style)
  bool offer_starttls = false;  // advertise STARTTLS in plaintext EHLO
  // Sends "250 injected\r\n" in the same write as the 220 to STARTTLS (CVE-2011-0411 probe):
  // a correct client discards it.
  bool starttls_injection = false;

  // AUTH (RFC 4954): PLAIN, LOGIN, XOAUTH2, OAUTHBEARER (RFC 7628). Empty = AUTH not offered.
  std::vector<std::string> auth_mechanisms;
  std::string auth_username;
  std::string auth_password;
  // XOAUTH2/OAUTHBEARER: the one bearer token accepted (set_auth_token() rotates it). The
  // client's SASL string must match byte for byte; OAUTHBEARER's host= is `oauth_host`
  // (default: `host`) and port= the listening port. A wrong token gets the providers'
  // error dance: 334 <base64 JSON>, the client's acknowledgement, then 535.
  std::string auth_token;
  std::string oauth_host;
  bool auth_requires_tls = true;  // advertise and accept AUTH only once TLS is up (538 otherwise)
  bool require_auth = false;      // MAIL before a successful AUTH gets 530 5.7.0
};

class FakeUpstream {
 public:
  using Config = FakeUpstreamConfig;

  struct Transaction {
    std::string mail_from;             // address inside <>, "" for the null sender
    std::string mail_params;           // what followed the address, e.g. "SIZE=12 BODY=8BITMIME"
    std::vector<std::string> rcpt_to;  // accepted recipients, in order
    std::string raw_data;        // bytes after the 354 up to (excluding) ".\r\n", still dot-stuffed
    std::string content;         // raw_data with dot-stuffing removed
    std::size_t connection = 0;  // index for commands()
    bool tls = false;            // received over TLS
    std::string auth_user;       // "" if not authenticated
  };

  struct AuthAttempt {
    std::string mechanism;  // "PLAIN", "LOGIN", "XOAUTH2" or "OAUTHBEARER"
    std::string username;
    std::string password;  // for XOAUTH2/OAUTHBEARER: the bearer token sent
    bool success = false;
    bool tls = false;
    std::size_t connection = 0;
  };

  explicit FakeUpstream(Config config = {});
  ~FakeUpstream();
  FakeUpstream(const FakeUpstream&) = delete;
  FakeUpstream& operator=(const FakeUpstream&) = delete;

  const std::string& host() const { return config_.host; }
  uint16_t port() const { return port_; }

  // Change the script while running (e.g. an upstream that recovers). Affects later commands.
  void set_override(SmtpStage stage, StageAction action);
  void clear_override(SmtpStage stage);
  void set_rcpt_override(const std::string& address, StageAction action);
  // The bearer token XOAUTH2/OAUTHBEARER accept from now on (the old one is refused).
  void set_auth_token(std::string token);
  std::string auth_token() const;

  std::vector<Transaction> transactions() const;
  std::size_t connection_count() const;
  // Command lines (without CRLF) of one connection, in arrival order; connections are numbered
  // in accept order from 0. Includes AUTH continuation lines; excludes message data.
  std::vector<std::string> commands(std::size_t connection) const;
  std::vector<std::vector<std::string>> all_commands() const;
  std::vector<AuthAttempt> auth_attempts() const;
  // Server-side handshake failures (e.g. the client rejected our certificate), in order.
  std::vector<std::string> tls_failures() const;
  std::size_t open_connections() const;

  bool wait_for_transactions(std::size_t count, std::chrono::milliseconds timeout) const;
  bool wait_for_connections(std::size_t count, std::chrono::milliseconds timeout) const;
  // Waits until no connection is open (e.g. after the client sent QUIT).
  bool wait_for_idle(std::chrono::milliseconds timeout) const;

  // Stops accepting, ends every connection, joins all threads. Idempotent.
  void stop();

 private:
  class Session;
  friend class Session;

  void accept_loop();
  // Takes the override for this stage (and recipient), consuming one use.
  std::optional<StageAction> take_action(SmtpStage stage, const std::string& recipient);
  // Sleeps up to `duration`; false if the server is stopping.
  bool sleep_unless_stopped(std::chrono::milliseconds duration);
  void wait_until_stopped();
  bool stopping() const;

  std::size_t add_connection();
  void record_command(std::size_t connection, const std::string& line);
  std::size_t record_transaction(Transaction transaction);
  void record_auth(AuthAttempt attempt);
  void record_tls_failure(const std::string& error);
  void connection_closed();

  Config config_;
  SslCtxPtr tls_context_;
  UniqueFd listener_;
  uint16_t port_ = 0;

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  bool stopping_ = false;
  std::vector<Transaction> transactions_;
  std::vector<std::vector<std::string>> commands_;
  std::vector<AuthAttempt> auth_attempts_;
  std::string auth_token_;
  std::vector<std::string> tls_failures_;
  std::size_t open_connections_ = 0;
  std::vector<std::shared_ptr<Session>> sessions_;
  std::vector<std::thread> session_threads_;
  std::thread accept_thread_;
};

}  // namespace portrelay::test
