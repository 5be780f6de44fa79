#pragma once
// One client connection on the local listener: moves bytes between the socket and the
// pure smtp::ServerSession, enforces client timeouts and input backpressure, and hands
// envelope and body to its relay::MessageSink.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "portrelay/config/identity_rewriter.hpp"
#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/connection.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/relay/envelope_policy.hpp"
#include "portrelay/relay/message_sink.hpp"
#include "portrelay/smtp/header_filter.hpp"
#include "portrelay/smtp/server_session.hpp"

namespace portrelay::server {

class Authenticator;
class AuthFailureTracker;

// What a session is started with: one immutable snapshot per configuration, shared by
// every session started under it. A reload gives new sessions a new snapshot; sessions
// already running keep theirs (and through make_sink, the relay selector it names) until
// they end.
struct SessionEnvironment {
  net::Loop* loop = nullptr;
  // Where each session's messages go (passthrough relay, spool, ...): one sink per session.
  std::function<std::unique_ptr<relay::MessageSink>(const std::string& session_id)> make_sink;
  metrics::Metrics* metrics = nullptr;
  std::shared_ptr<tls::Context> tls_context;           // null: no STARTTLS
  std::shared_ptr<const Authenticator> authenticator;  // null: no AUTH
  config::Duration command_timeout{};
  config::Duration data_timeout{};
  // The largest message the upstreams take, at most the argument ([server]
  // max_message_size): the selector's learned EHLO SIZEs. Empty: the configured limit.
  std::function<std::uint64_t(std::uint64_t configured)> message_size_limit;
  // Set by SubmissionServer: failed AUTH per client address (delays the 535).
  AuthFailureTracker* auth_failures = nullptr;
  // Set by SubmissionServer: a session authenticated or sent MAIL (engaged()) for the first
  // time; the before-MAIL count of the loop changed ([server] workers share it).
  std::function<void()> on_engaged;
  // Who may send and where local recipients go (allowed_senders, require_route, aliases);
  // null: every envelope goes to the sink as the client wrote it.
  std::shared_ptr<const relay::EnvelopePolicy> envelope_policy;
  // [rewrite], [aliases] and add_missing_headers, applied as each message is accepted.
  // Null: messages are taken as they come.
  std::shared_ptr<const config::IdentityRewriter> identity;
  bool add_missing_headers = false;
};

class SubmissionSession : private smtp::ServerSessionHandler {
 public:
  // `on_finished` runs once when the session is over; the owner may then destroy it
  // (not from inside the callback).
  SubmissionSession(std::shared_ptr<const SessionEnvironment> environment,
                    smtp::ServerPolicy policy, bool implicit_tls,
                    std::unique_ptr<net::TcpStream> stream, std::string id, std::string client_ip,
                    std::function<void(SubmissionSession*)> on_finished);
  ~SubmissionSession() override;

  // Starts the session: greeting, or refusal for clients outside the allow-list.
  void start(bool allowed, bool implicit_tls);
  void shutdown() {
    session_.shutdown();
    after_event();
  }
  void force_close();
  // Closes with 421 4.7.0 to make room for another client (SubmissionServer's shedding).
  void shed() {
    session_.shed();
    after_event();
  }
  // Authenticated or sent MAIL: see smtp::ServerSession::engaged().
  bool engaged() const { return session_.engaged(); }
  // Closing: the final reply is on its way; the session no longer holds a client slot.
  bool closing() const { return closing_ || finished_; }
  // When the client last completed a command (or connected).
  std::chrono::steady_clock::time_point last_progress() const { return last_progress_; }
  const std::string& id() const { return id_; }
  // The client's IP (IPv4-mapped written as IPv4): the key of per-address limits.
  const std::string& client_ip() const { return client_ip_; }

 private:
  // smtp::ServerSessionHandler
  void send(std::string bytes) override;
  void close_after_send() override;
  void mail_from(const smtp::PathArgument& sender) override;
  void rcpt_to(const smtp::PathArgument& recipient) override;
  void data_end() override;
  void authenticate(const std::string& username, const std::string& password) override;
  void start_tls() override;
  void data_begin() override;
  void data_chunk(std::string_view content) override;
  void data_rejected(smtp::DataReader::Violation violation) override;
  void reset() override;
  std::size_t queued_output() const override;
  std::uint64_t message_size_limit(std::uint64_t configured) const override;

  void on_input(std::string_view bytes);
  void after_event();  // re-arm the timeout, apply backpressure
  void finish(const char* by);
  std::function<void(const smtp::Reply&)> completer();
  // RCPT of a local name with several alias targets: one sink recipient() each, one answer.
  void add_next_target();

  // The recipient being expanded: its targets, the next to hand to the sink, the answer.
  struct Expansion {
    smtp::PathArgument recipient;
    std::vector<std::string> targets;
    std::size_t next = 0;
    std::optional<smtp::Reply> accepted;  // the first 2xx
    std::optional<smtp::Reply> refused;   // the last refusal
  };
  void note_header_rewrite();  // logs (and counts) what the acceptance rewrite did

  std::shared_ptr<const SessionEnvironment> environment_;
  std::string id_;
  std::string peer_;
  std::string client_ip_;
  std::unique_ptr<net::Connection> connection_;
  smtp::ServerSession session_;
  std::unique_ptr<relay::MessageSink> sink_;
  std::string user_;  // authenticated user name, "" before AUTH
  Expansion expansion_;
  std::vector<std::string> given_;  // addresses handed to the sink in this transaction
  // The acceptance rewrite of the message being received (environment_->identity).
  std::string original_sender_;
  std::optional<smtp::HeaderFilter> header_filter_;
  std::string filtered_;  // the filter's output for one chunk
  net::Timer timer_;
  net::Timer auth_delay_;  // holds back a 535 (AuthFailureTracker)
  std::function<void(SubmissionSession*)> on_finished_;
  bool finished_ = false;
  bool closing_ = false;
  bool tls_handshaking_ = false;  // after our 220 to STARTTLS, until the handshake ends
  // What the command timer was last armed for: it restarts when a command line completes
  // or the phase changes, not on every byte (a client dripping a line byte by byte must
  // finish it within command_timeout).
  smtp::ServerSession::Phase timed_phase_ = smtp::ServerSession::Phase::Closed;
  std::uint64_t timed_commands_ = 0;
  std::chrono::steady_clock::time_point last_progress_ = std::chrono::steady_clock::now();
  bool engaged_reported_ = false;  // environment_->on_engaged ran
  // Expires with the session: the password check's answer (authenticate()) comes from
  // another thread and may arrive after the session is gone. Nothing else needs it: the
  // session is freed by Loop::defer_delete, never inside its own callbacks.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace portrelay::server
