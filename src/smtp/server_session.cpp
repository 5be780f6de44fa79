#include "portrelay/smtp/server_session.hpp"

#include <algorithm>
#include <charconv>

#include "portrelay/base/ascii.hpp"
#include "portrelay/smtp/base64.hpp"

namespace portrelay::smtp {
namespace {

constexpr std::size_t kCompactThreshold = 16 * 1024;

// SMTPUTF8 (RFC 6531) is not offered, so an address must be ASCII (RFC 5321 4.1.2). The
// relay does not implement SMTPUTF8 end to end (it would have to know that every endpoint
// that could take the message offers it, and validate UTF-8), so it refuses instead of
// forwarding 8-bit octets an upstream was never told about.
bool has_8bit_octet(std::string_view text) {
  for (char c : text)
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  return false;
}

constexpr std::string_view kNeedsSmtpUtf8 =
    "Non-ASCII address needs SMTPUTF8, which is not offered";

bool parse_uint64(std::string_view text, std::uint64_t& value) {
  if (text.empty()) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size();
}

using ascii::upper;

}  // namespace

ServerSession::ServerSession(ServerPolicy policy, ServerSessionHandler& handler,
                             bool tls_from_start)
    : policy_(std::move(policy)), tls_active_(tls_from_start), handler_(handler) {}

ServerSession::Phase ServerSession::phase() const {
  if (phase_ == Phase::Closed) return Phase::Closed;
  if (pending_ != Pending::None) return Phase::Waiting;
  return phase_;
}

void ServerSession::start() {
  reply(220, "", policy_.hostname + " ESMTP portrelay");
  flush();
}

void ServerSession::refuse(std::string_view reason_text) {
  close_with(554, "5.7.1", reason_text);
  flush();
}

void ServerSession::reply(int code, std::string_view enhanced, std::string_view text) {
  output_ += format_reply(code, enhanced, text);
}

void ServerSession::error_reply(int code, std::string_view enhanced, std::string_view text) {
  reply(code, enhanced, text);
  if (++errors_ >= policy_.max_errors) close_with(421, "4.7.0", "Too many errors, closing");
}

void ServerSession::close_with(int code, std::string_view enhanced, std::string_view text) {
  if (phase_ == Phase::Closed) return;
  reply(code, enhanced, policy_.hostname + " " + std::string(text));
  close_now();
}

void ServerSession::close_now() {
  if (phase_ == Phase::Closed) return;
  if (has_sender_ || phase_ == Phase::Data) handler_.reset();
  phase_ = Phase::Closed;
  pending_ = Pending::None;
  flush();
  handler_.close_after_send();
}

void ServerSession::flush() {
  if (output_.empty()) return;
  handler_.send(std::move(output_));
  output_.clear();
}

void ServerSession::feed(std::string_view bytes) {
  if (phase_ == Phase::Closed) return;
  input_.append(bytes);
  process();
}

void ServerSession::compact_input() {
  if (input_pos_ == input_.size()) {
    // Give a large buffer back: a session that was flooded once should not keep its peak.
    if (input_.capacity() > kCompactThreshold) {
      input_ = std::string();
    } else {
      input_.clear();
    }
    input_pos_ = 0;
  } else if (input_pos_ > kCompactThreshold) {
    input_.erase(0, input_pos_);
    input_pos_ = 0;
  }
}

bool ServerSession::output_full() const {
  return output_.size() + handler_.queued_output() >= policy_.max_queued_output;
}

void ServerSession::resume() {
  if (phase_ == Phase::Closed) return;
  process();
}

void ServerSession::process() {
  if (processing_) return;  // complete() called from inside a handler callback
  processing_ = true;
  output_blocked_ = false;
  while (phase_ != Phase::Closed && pending_ == Pending::None) {
    // Only commands produce replies; data is consumed whatever the backlog.
    if (phase_ == Phase::Command && buffered_input() > 0 && output_full()) {
      output_blocked_ = true;
      break;
    }
    bool progressed = phase_ == Phase::Data ? process_data() : process_command_line();
    if (!progressed) break;
  }
  compact_input();
  processing_ = false;
  flush();
}

bool ServerSession::process_command_line() {
  std::string_view available(input_.data() + input_pos_, input_.size() - input_pos_);
  std::size_t newline = available.find('\n');
  if (newline == std::string_view::npos) {
    if (available.size() >= policy_.max_command_line) {
      // Drop what we have and the rest of this line when it comes; reply once.
      input_pos_ = input_.size();
      if (!skipping_long_line_) error_reply(500, "5.5.2", "Line too long");
      skipping_long_line_ = true;
    }
    return false;
  }
  std::string_view line = available.substr(0, newline);
  input_pos_ += newline + 1;
  ++commands_received_;
  if (skipping_long_line_) {
    skipping_long_line_ = false;
    return true;
  }
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() + 2 > policy_.max_command_line) {
    error_reply(500, "5.5.2", "Line too long");
    return true;
  }
  if (line.find('\0') != std::string_view::npos) {
    // No SMTP command or AUTH response contains NUL; C-string handling further down the
    // line (logs, upstream commands) would silently truncate at it.
    auth_step_ = AuthStep::None;
    auth_username_.clear();
    error_reply(500, "5.5.2", "Syntax error: NUL octet in command");
    return true;
  }
  if (auth_step_ != AuthStep::None) {
    handle_auth_line(line);
    return true;
  }
  handle(parse_command(line));
  return true;
}

bool ServerSession::process_data() {
  std::string_view available(input_.data() + input_pos_, input_.size() - input_pos_);
  if (available.empty()) return false;
  std::string content;
  input_pos_ += data_reader_.feed(available, content);
  if (!content.empty()) handler_.data_chunk(content);
  if (!data_reader_.finished()) return false;
  phase_ = Phase::Command;
  auto violation = data_reader_.violation();
  if (violation == DataReader::Violation::None) {
    pending_ = Pending::DataEnd;
    handler_.data_end();
    return true;
  }
  handler_.data_rejected(violation);
  reset_transaction();
  switch (violation) {
    case DataReader::Violation::TooBig:
      reply(552, "5.3.4", "Message size exceeds fixed maximum message size");
      break;
    case DataReader::Violation::LineTooLong:
      reply(554, "5.6.0", "Message has a line longer than 998 octets; not relayed");
      break;
    case DataReader::Violation::Nul:
      // A receiver that drops NULs could see an end of data we did not (SMTP smuggling).
      reply(554, "5.6.0", "Message contains a NUL octet; not relayed");
      break;
    default:
      // SMTP smuggling defence: a bare CR or LF could make the upstream see a different
      // end of data than we did, so the message is refused whole.
      reply(554, "5.6.0", "Message contains a bare CR or LF; use CRLF line endings");
      break;
  }
  if (draining_) close_with(421, "4.3.2", "Service shutting down");
  return true;
}

void ServerSession::reset_transaction() {
  has_sender_ = false;
  recipients_ = 0;
}

void ServerSession::handle(const Command& command) {
  switch (command.verb) {
    case Verb::Ehlo:
      return handle_ehlo(command, true);
    case Verb::Helo:
      return handle_ehlo(command, false);
    case Verb::Mail:
      return handle_mail(command);
    case Verb::Rcpt:
      return handle_rcpt(command);
    case Verb::Data:
      return handle_data(command);
    case Verb::Starttls:
      return handle_starttls(command);
    case Verb::Auth:
      return handle_auth(command);
    case Verb::Rset:
      if (has_sender_) handler_.reset();
      reset_transaction();
      reply(250, "2.0.0", "Ok");
      if (draining_) close_with(421, "4.3.2", "Service shutting down");
      return;
    case Verb::Noop:
      return reply(250, "2.0.0", "Ok");
    case Verb::Quit:
      if (has_sender_) handler_.reset();
      reset_transaction();
      reply(221, "2.0.0", "Bye");
      phase_ = Phase::Closed;
      flush();
      handler_.close_after_send();
      return;
    case Verb::Vrfy:
      return reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery");
    case Verb::Expn:
      return error_reply(502, "5.5.1", "EXPN not supported");
    case Verb::Help:
      return reply(214, "2.0.0",
                   "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
    case Verb::Bdat:
      return error_reply(502, "5.5.1", "BDAT not supported (no CHUNKING)");
    case Verb::Unknown:
      if (command.verb_text.empty())
        return error_reply(500, "5.5.2", "Syntax error: empty command");
      return error_reply(500, "5.5.2", "Command not recognized");
  }
}

void ServerSession::handle_ehlo(const Command& command, bool extended) {
  if (command.argument.empty())
    return error_reply(501, "5.5.4", extended ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
  if (has_sender_) handler_.reset();
  reset_transaction();
  greeted_ = true;
  if (!extended) return reply(250, "", policy_.hostname);
  std::vector<std::string> lines = {policy_.hostname, "PIPELINING",
                                    "SIZE " + std::to_string(size_limit()), "8BITMIME",
                                    "ENHANCEDSTATUSCODES"};
  if (policy_.starttls_offered && !tls_active_) lines.push_back("STARTTLS");
  if (policy_.auth_offered && tls_active_ && !authenticated_) lines.push_back("AUTH PLAIN LOGIN");
  lines.push_back("HELP");
  output_ += format_multiline_reply(250, lines);
}

std::uint64_t ServerSession::size_limit() const {
  return std::min(policy_.max_message_size, handler_.message_size_limit(policy_.max_message_size));
}

void ServerSession::handle_mail(const Command& command) {
  if (draining_) return close_with(421, "4.3.2", "Service shutting down");
  if (!greeted_) return error_reply(503, "5.5.1", "Send HELO/EHLO first");
  if (policy_.auth_required && !authenticated_)
    return error_reply(530, "5.7.0", "Authentication required");
  if (has_sender_) return error_reply(503, "5.5.1", "Nested MAIL command");
  auto sender = parse_mail_from(command.argument, bare_local_part());
  if (!sender)
    return error_reply(501, "5.1.7",
                       "Syntax: MAIL FROM:<address> (" + sender.error().message + ")");
  if (has_8bit_octet(command.argument)) return error_reply(553, "5.6.7", kNeedsSmtpUtf8);
  for (const auto& parameter : sender->parameters) {
    if (parameter.keyword == "SIZE") {
      std::uint64_t size = 0;
      if (!parse_uint64(parameter.value, size))
        return error_reply(501, "5.5.4", "Syntax: SIZE=<octets>");
      if (size > size_limit())
        return error_reply(552, "5.3.4", "Message size exceeds fixed maximum message size");
    } else if (parameter.keyword == "BODY") {
      std::string body = upper(parameter.value);
      if (body != "7BIT" && body != "8BITMIME")
        return error_reply(501, "5.5.4", "Syntax: BODY=7BIT or BODY=8BITMIME");
    } else if (parameter.keyword == "AUTH" && policy_.auth_offered) {
      // RFC 4954 5: accepted; the relay does not forward it.
    } else {
      return error_reply(555, "5.5.4", "Unsupported MAIL parameter " + parameter.keyword);
    }
  }
  pending_ = Pending::Mail;
  mail_seen_ = true;
  handler_.mail_from(*sender);
}

void ServerSession::handle_rcpt(const Command& command) {
  if (!has_sender_) return error_reply(503, "5.5.1", "Need MAIL command first");
  if (recipients_ >= policy_.max_recipients) return reply(452, "4.5.3", "Too many recipients");
  auto recipient = parse_rcpt_to(command.argument, bare_local_part());
  if (!recipient)
    return error_reply(501, "5.1.3",
                       "Syntax: RCPT TO:<address> (" + recipient.error().message + ")");
  if (has_8bit_octet(command.argument)) return error_reply(553, "5.6.7", kNeedsSmtpUtf8);
  if (!recipient->parameters.empty())
    return error_reply(555, "5.5.4",
                       "Unsupported RCPT parameter " + recipient->parameters.front().keyword);
  pending_ = Pending::Rcpt;
  handler_.rcpt_to(*recipient);
}

void ServerSession::handle_data(const Command& command) {
  if (!command.argument.empty()) return error_reply(501, "5.5.4", "Syntax: DATA");
  if (!has_sender_) return error_reply(503, "5.5.1", "Need MAIL command first");
  if (recipients_ == 0) return error_reply(554, "5.5.1", "No valid recipients");
  reply(354, "", "End data with <CR><LF>.<CR><LF>");
  data_reader_ = DataReader(DataReader::Limits{size_limit(), 1000});
  phase_ = Phase::Data;
  handler_.data_begin();
}

void ServerSession::handle_starttls(const Command& command) {
  if (!policy_.starttls_offered || tls_active_)
    return error_reply(502, "5.5.1", tls_active_ ? "Already using TLS" : "STARTTLS not available");
  if (!command.argument.empty()) return error_reply(501, "5.5.4", "Syntax: STARTTLS");
  reply(220, "2.0.0", "Ready to start TLS");
  // CVE-2011-0411 class: anything pipelined after STARTTLS was sent in plaintext and
  // must not be executed inside the TLS session.
  input_.clear();
  input_pos_ = 0;
  pending_ = Pending::StartTls;
  flush();
  handler_.start_tls();
}

void ServerSession::tls_started() {
  if (pending_ != Pending::StartTls) return;
  pending_ = Pending::None;
  tls_active_ = true;
  // RFC 3207 4.2: the session starts over; the client must EHLO again.
  greeted_ = false;
  if (has_sender_) handler_.reset();
  reset_transaction();
  process();
}

void ServerSession::handle_auth(const Command& command) {
  if (!policy_.auth_offered) return error_reply(502, "5.5.1", "AUTH not available");
  if (!tls_active_) return error_reply(538, "5.7.11", "Encryption required for AUTH");
  if (!greeted_) return error_reply(503, "5.5.1", "Send EHLO first");
  if (authenticated_) return error_reply(503, "5.5.1", "Already authenticated");
  if (has_sender_) return error_reply(503, "5.5.1", "AUTH not allowed during a mail transaction");
  std::string_view argument = command.argument;
  std::size_t space = argument.find(' ');
  std::string mechanism = upper(argument.substr(0, space));
  std::string_view initial =
      space == std::string_view::npos ? std::string_view() : argument.substr(space + 1);
  if (mechanism == "PLAIN") {
    if (initial.empty()) {
      auth_step_ = AuthStep::PlainResponse;
      // RFC 4954 continue-req = "334" SP [base64] CRLF: the space is mandatory.
      output_ += "334 \r\n";
      return;
    }
    return finish_auth_plain(initial);
  }
  if (mechanism == "LOGIN") {
    if (!initial.empty()) {
      auto user = base64_decode(initial);
      if (!user) return error_reply(501, "5.5.2", "Invalid base64 data");
      auth_username_ = *user;
      auth_step_ = AuthStep::LoginPassword;
      return reply(334, "", "UGFzc3dvcmQ6");  // "Password:"
    }
    auth_step_ = AuthStep::LoginUser;
    return reply(334, "", "VXNlcm5hbWU6");  // "Username:"
  }
  error_reply(504, "5.5.4", "Unrecognized authentication mechanism");
}

void ServerSession::handle_auth_line(std::string_view line) {
  AuthStep step = std::exchange(auth_step_, AuthStep::None);
  if (line == "*") return error_reply(501, "5.0.0", "Authentication cancelled");
  if (step == AuthStep::PlainResponse) return finish_auth_plain(line);
  auto decoded = base64_decode(line);
  if (!decoded) return error_reply(501, "5.5.2", "Invalid base64 data");
  if (step == AuthStep::LoginUser) {
    auth_username_ = *decoded;
    auth_step_ = AuthStep::LoginPassword;
    return reply(334, "", "UGFzc3dvcmQ6");
  }
  pending_ = Pending::Auth;
  std::string username = std::exchange(auth_username_, std::string());
  handler_.authenticate(username, *decoded);
}

void ServerSession::finish_auth_plain(std::string_view token) {
  auto decoded = base64_decode(token);
  if (!decoded) return error_reply(501, "5.5.2", "Invalid base64 data");
  // authzid NUL authcid NUL password; an authzid other than the user is not supported.
  std::size_t first = decoded->find('\0');
  std::size_t second = first == std::string::npos ? first : decoded->find('\0', first + 1);
  if (second == std::string::npos)
    return error_reply(501, "5.5.2", "Malformed AUTH PLAIN response");
  std::string authzid = decoded->substr(0, first);
  std::string username = decoded->substr(first + 1, second - first - 1);
  if (!authzid.empty() && authzid != username) {
    reply(535, "5.7.8", "Authentication credentials invalid");
    count_auth_failure();
    return;
  }
  pending_ = Pending::Auth;
  handler_.authenticate(username, decoded->substr(second + 1));
}

bool ServerSession::count_auth_failure() {
  ++auth_failures_;
  if (++errors_ >= policy_.max_errors) {
    close_with(421, "4.7.0", "Too many errors, closing");
    return true;
  }
  if (auth_failures_ >= policy_.max_auth_failures) {
    close_with(421, "4.7.0", "Too many authentication failures, closing");
    return true;
  }
  return false;
}

void ServerSession::complete(const Reply& result) {
  Pending pending = std::exchange(pending_, Pending::None);
  if (phase_ == Phase::Closed || pending == Pending::None) return;
  bool auth_failed = false;
  switch (pending) {
    case Pending::Mail:
      if (result.success()) has_sender_ = true;
      break;
    case Pending::Rcpt:
      if (result.success()) ++recipients_;
      break;
    case Pending::DataEnd:
      reset_transaction();
      break;
    case Pending::Auth:
      if (result.code == 235) authenticated_ = true;
      // 535 and other 5xx: the credentials were refused. A 4xx (454: try again later) is
      // the server's trouble, not the client's, and does not count.
      auth_failed = result.code >= 500;
      break;
    default:
      break;
  }
  output_ += format_reply(result);
  if (auth_failed && count_auth_failure()) return;
  // The 421 just relayed is both the reply to this command and the goodbye: a second
  // 421 would be taken by a pipelining client as the reply to its next command.
  if (result.code == 421) return close_now();
  if (draining_ && !has_sender_) return close_with(421, "4.3.2", "Service shutting down");
  process();
}

void ServerSession::on_timeout() { close_with(421, "4.4.2", "Error: timeout exceeded"); }

void ServerSession::shed() {
  close_with(421, "4.7.0", "Too many idle connections, closing the oldest; try again later");
}

void ServerSession::shutdown() {
  draining_ = true;
  if (!in_transaction() && pending_ == Pending::None)
    close_with(421, "4.3.2", "Service shutting down");
}

}  // namespace portrelay::smtp
