#pragma once
// The local-submission side of SMTP (RFC 5321 server) as a pure state machine: bytes from
// the client go in through feed(); replies and transaction events go out through the
// handler. Operations that need the upstream (MAIL, RCPT, end of DATA) and STARTTLS /
// AUTH are asynchronous: the handler answers later with complete() / tls_started(), and
// pipelined input stays buffered until then, so replies always come in command order.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "portrelay/smtp/command.hpp"
#include "portrelay/smtp/data_reader.hpp"
#include "portrelay/smtp/reply.hpp"

namespace portrelay::smtp {

struct ServerPolicy {
  std::string hostname = "localhost";
  std::uint64_t max_message_size = 25u << 20;
  std::size_t max_recipients = 100;
  // RFC 5321 asks for at least 512; AUTH PLAIN with long tokens needs more.
  std::size_t max_command_line = 2048;
  std::size_t max_errors = 10;  // bad commands (and failed AUTH) before the session is dropped
  // Failed AUTH attempts (535) on one connection before it is dropped with 421 4.7.0.
  std::size_t max_auth_failures = 3;
  // Commands are not processed while this many reply octets wait to be sent (ours plus
  // ServerSessionHandler::queued_output()): a client that pipelines without reading costs
  // at most this much output, however much input one read brought (an EHLO reply is ~13
  // times its command).
  std::size_t max_queued_output = 64 * 1024;
  bool starttls_offered = false;
  bool auth_offered = false;   // AUTH is advertised once TLS is active
  bool auth_required = false;  // MAIL needs a successful AUTH first
  // MAIL FROM:<root> and RCPT TO:<root> (no domain) are taken, for a handler that maps
  // local names ([aliases], [rewrite]); otherwise they get 501.
  bool bare_local_parts = false;
};

class ServerSessionHandler {
 public:
  virtual ~ServerSessionHandler() = default;
  virtual void send(std::string bytes) = 0;
  // After the bytes already sent, close the connection.
  virtual void close_after_send() = 0;
  // Asynchronous; each must be answered with ServerSession::complete().
  virtual void mail_from(const PathArgument& sender) = 0;
  virtual void rcpt_to(const PathArgument& recipient) = 0;
  virtual void data_end() = 0;  // the whole content has been delivered by data_chunk()
  virtual void authenticate(const std::string& username, const std::string& password) = 0;
  // Asynchronous; answered with ServerSession::tls_started() (or the connection dies).
  virtual void start_tls() = 0;
  // Synchronous notifications.
  virtual void data_begin() = 0;
  virtual void data_chunk(std::string_view content) = 0;
  virtual void data_rejected(DataReader::Violation violation) = 0;
  virtual void reset() = 0;  // the transaction (if any) is abandoned
  // Reply octets sent but not yet taken by the peer; counts toward max_queued_output.
  virtual std::size_t queued_output() const { return 0; }
  // The largest message the session may take now, at most `configured` (the policy's
  // max_message_size): what EHLO advertises as SIZE and MAIL ... SIZE= and the data are
  // held to. A relay lowers it to what its upstreams accept.
  virtual std::uint64_t message_size_limit(std::uint64_t configured) const { return configured; }
};

class ServerSession {
 public:
  // `tls_from_start`: the connection is TLS from its first byte (implicit TLS). The policy
  // says what is allowed; whether TLS is up is the session's own state.
  ServerSession(ServerPolicy policy, ServerSessionHandler& handler, bool tls_from_start = false);
  bool tls_active() const { return tls_active_; }

  void start();                               // sends the 220 greeting
  void refuse(std::string_view reason_text);  // 554 5.7.1 and close (access control)
  void feed(std::string_view bytes);
  void complete(const Reply& reply);  // answer to the pending asynchronous operation
  void tls_started();
  void on_timeout();  // 421 4.4.2 and close
  // 421 4.7.0 and close: the server needs the slot for another client (load shedding).
  void shed();
  // Processes buffered input that waited for queued output to drain (see output_blocked()).
  void resume();
  // Graceful stop: idle sessions get 421 now; a transaction in progress may finish first.
  void shutdown();

  enum class Phase { Command, Data, Waiting, Closed };
  Phase phase() const;
  bool in_transaction() const { return has_sender_ || phase_ == Phase::Data; }
  bool closed() const { return phase_ == Phase::Closed; }
  // Unprocessed input; the I/O layer stops reading while this is large.
  std::size_t buffered_input() const { return input_.size() - input_pos_; }
  std::size_t recipients() const { return recipients_; }
  // Buffered commands wait because max_queued_output was reached; call resume() once the
  // handler's queued output has drained below it.
  bool output_blocked() const { return output_blocked_; }
  // Complete command lines (and AUTH responses) consumed so far: a client that drips a line
  // byte by byte makes no progress here, so the I/O layer's command timer is not restarted.
  std::uint64_t commands_received() const { return commands_received_; }
  // Authenticated, or got as far as a MAIL command: the session is doing real work. Idle
  // sessions that never got here are the first to be shed when the server is full.
  bool engaged() const { return authenticated_ || mail_seen_; }

 private:
  enum class Pending { None, Mail, Rcpt, DataEnd, StartTls, Auth };
  enum class AuthStep { None, PlainResponse, LoginUser, LoginPassword };

  void process();
  bool process_command_line();
  bool process_data();
  void handle(const Command& command);
  void handle_ehlo(const Command& command, bool extended);
  std::uint64_t size_limit() const;  // the handler's, never above the policy's
  BareLocalPart bare_local_part() const {
    return policy_.bare_local_parts ? BareLocalPart::Accepted : BareLocalPart::Refused;
  }
  void handle_mail(const Command& command);
  void handle_rcpt(const Command& command);
  void handle_data(const Command& command);
  void handle_starttls(const Command& command);
  void handle_auth(const Command& command);
  void handle_auth_line(std::string_view line);
  void finish_auth_plain(std::string_view token);
  void reply(int code, std::string_view enhanced, std::string_view text);
  void error_reply(int code, std::string_view enhanced, std::string_view text);
  void close_with(int code, std::string_view enhanced, std::string_view text);
  void close_now();  // close without a reply of our own (one was already queued)
  // Counts a failed AUTH (toward max_errors too); true if the session was closed for it.
  bool count_auth_failure();
  bool output_full() const;
  void reset_transaction();
  void flush();
  void compact_input();

  ServerPolicy policy_;
  bool tls_active_ = false;
  ServerSessionHandler& handler_;
  Phase phase_ = Phase::Command;
  Pending pending_ = Pending::None;
  AuthStep auth_step_ = AuthStep::None;
  std::string auth_username_;
  bool greeted_ = false;  // HELO/EHLO seen
  bool authenticated_ = false;
  bool has_sender_ = false;
  bool draining_ = false;
  bool skipping_long_line_ = false;
  bool processing_ = false;
  bool output_blocked_ = false;
  bool mail_seen_ = false;
  std::size_t recipients_ = 0;
  std::size_t errors_ = 0;
  std::size_t auth_failures_ = 0;
  std::uint64_t commands_received_ = 0;
  std::string input_;
  std::size_t input_pos_ = 0;
  std::string output_;
  DataReader data_reader_{DataReader::Limits{}};
};

}  // namespace portrelay::smtp
