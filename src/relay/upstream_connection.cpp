#include "portrelay/relay/upstream_connection.hpp"

#include "portrelay/base/log.hpp"
#include "portrelay/net/tcp_listener.hpp"
#include "portrelay/smtp/command.hpp"

namespace portrelay::relay {
namespace {

using Clock = std::chrono::steady_clock;

// An AUTH line for the transcript: the command and mechanism, never the credentials or
// token (continuation lines of AUTH LOGIN are all secret).
std::string redacted_auth(std::string_view data) {
  if (data.rfind("AUTH ", 0) != 0) return "<AUTH data, not logged>";
  auto mechanism_end = data.find(' ', 5);
  return std::string(data.substr(0, mechanism_end)) +
         (mechanism_end == std::string_view::npos ? "" : " <not logged>");
}

// A command as it may appear in logs and error details.
std::string printable_command(const smtp::HandshakeAction& action) {
  if (action.sensitive) return "AUTH";
  std::string text = action.data;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

}  // namespace

void UpstreamConnection::transcribe(const char* direction, std::string_view line) const {
  if (!log::transcript()) return;
  log::info("smtp_transcript",
            {{"endpoint", runtime_->endpoint.label()}, {"dir", direction}, {"line", line}});
}

UpstreamConnection::UpstreamConnection(net::Loop& loop,
                                       std::shared_ptr<const EndpointRuntime> endpoint,
                                       const UpstreamTimeouts& timeouts, std::string helo_name)
    : loop_(loop),
      runtime_(std::move(endpoint)),
      timeouts_(timeouts),
      helo_name_(helo_name),
      handshake_(smtp::ClientHandshake::Options{std::move(helo_name), runtime_->endpoint.tls,
                                                runtime_->endpoint.credentials.username,
                                                runtime_->password}),
      timer_(loop.uv()) {}

UpstreamConnection::~UpstreamConnection() = default;

double UpstreamConnection::elapsed_ms() const {
  return std::chrono::duration<double, std::milli>(Clock::now() - started_).count();
}

std::string UpstreamConnection::tls_version() const {
  if (!connection_ || !connection_->tls()) return "";
  return connection_->tls()->protocol_version();
}

// The failure text is completed only if the timer fires: arming happens for every
// command of every message, firing almost never.
void UpstreamConnection::arm_timer(config::Duration timeout, FailureReason reason,
                                   std::string_view what, std::string_view detail) {
  timeout_reason_ = reason;
  timeout_limit_ = timeout;
  timeout_what_.assign(what).append(detail);  // reuses the member's capacity
  timer_.start(timeout, [this]() {
    fail(timeout_reason_, timeout_what_ + " within " + config::format_duration(timeout_limit_));
  });
}

void UpstreamConnection::connect(ReadyCallback callback) {
  ready_callback_ = std::move(callback);
  started_ = Clock::now();
  const auto& endpoint = runtime_->endpoint;
  phase_ = Phase::Resolving;
  if (endpoint.credentials.configured() && !runtime_->password_problem.empty())
    return fail(FailureReason::AuthFailed, "no password: " + runtime_->password_problem);
  if (!runtime_->oauth_token) return resolve();
  // The token may come from a command that takes seconds: the loop goes on meanwhile, and
  // this connection continues when the token is there (at once when it is cached).
  token_request_ = runtime_->oauth_token->fetch(
      loop_, [this](OAuthTokenSource::Token token) { on_token(std::move(token)); });
}

void UpstreamConnection::on_token(OAuthTokenSource::Token token) {
  token_request_.reset();
  if (!token.problem.empty())
    return fail(FailureReason::AuthFailed, "no OAuth token: " + token.problem);
  const auto& endpoint = runtime_->endpoint;
  smtp::ClientHandshake::Options options{helo_name_, endpoint.tls, endpoint.credentials.username,
                                         ""};
  options.auth = endpoint.credentials.auth;
  options.oauth_token = token.value;
  options.oauth_host = endpoint.host;
  options.oauth_port = endpoint.port;
  oauth_token_sent_ = std::move(token.value);
  handshake_ = smtp::ClientHandshake(std::move(options));
  resolve();
}

void UpstreamConnection::resolve() {
  const auto& endpoint = runtime_->endpoint;
  if (!endpoint.addresses.empty()) {
    std::vector<sockaddr_storage> pinned;
    for (const auto& text : endpoint.addresses) {
      sockaddr_storage address{};
      net::make_sockaddr(text, endpoint.port, address);  // validated by the config loader
      pinned.push_back(address);
    }
    return on_resolved(0, std::move(pinned));
  }
  arm_timer(timeouts_.resolve, FailureReason::Dns, "cannot resolve ", endpoint.host);
  resolution_ = net::Resolution::start(loop_.uv(), endpoint.host, endpoint.port,
                                       [this](int status, std::vector<sockaddr_storage> addresses) {
                                         on_resolved(status, std::move(addresses));
                                       });
}

void UpstreamConnection::on_resolved(int status, std::vector<sockaddr_storage> addresses) {
  resolution_.reset();  // finished; the request has already detached from it
  timer_.stop();
  const auto& endpoint = runtime_->endpoint;
  if (status != 0)
    return fail(
        is_local_resource_error(status) ? FailureReason::LocalResources : FailureReason::Dns,
        "cannot resolve " + endpoint.host + ": " + uv_strerror(status));
  trace_.resolved_ms = elapsed_ms();
  for (const auto& address : addresses)
    trace_.addresses.push_back(net::format_address(reinterpret_cast<const sockaddr*>(&address)));
  phase_ = Phase::Connecting;
  std::size_t count = addresses.size();
  // One deadline for the whole TCP phase, however many addresses are tried.
  racer_ = std::make_unique<net::AddressRacer>(loop_, std::move(addresses),
                                               timeouts_.address_stagger, timeouts_.connect);
  racer_->start([this, count](net::AddressRacer::Result result) {
    loop_.defer_delete(std::move(racer_));  // inside its callback
    if (result.stream) {
      trace_.connected_address = result.address;
      return on_tcp_connected(std::move(result.stream));
    }
    const auto& endpoint = runtime_->endpoint;
    if (result.error == UV_ETIMEDOUT && result.address.empty())
      return fail(FailureReason::Timeout, "no answer from " + endpoint.host + ":" +
                                              std::to_string(endpoint.port) + " (" +
                                              std::to_string(count) + " address(es)) within " +
                                              config::format_duration(timeouts_.connect));
    fail(reason_from_connect_error(result.error),
         "connect to " + result.address + ": " + uv_strerror(result.error));
  });
}

void UpstreamConnection::on_tcp_connected(std::unique_ptr<net::TcpStream> stream) {
  trace_.tcp_ms = elapsed_ms();
  phase_ = Phase::Handshaking;
  connection_ = std::make_unique<net::Connection>(std::move(stream));
  connection_->start([this](std::string_view data) { on_data(data); },
                     [this](int status) { on_closed(status); });
  if (runtime_->endpoint.tls == TlsMode::Implicit) return start_tls();
  arm_timer(timeouts_.greeting, FailureReason::GreetingTimeout, "no greeting");
}

void UpstreamConnection::start_tls() {
  const auto& endpoint = runtime_->endpoint;
  const std::string& name =
      endpoint.tls_server_name.empty() ? endpoint.host : endpoint.tls_server_name;
  // RFC 3207 4: plaintext that arrived before the handshake (e.g. injected after the
  // 220) must not be read as if it came over TLS.
  parser_.clear();
  arm_timer(timeouts_.handshake, FailureReason::TlsHandshake, "TLS handshake not done");
  auto engine = tls::Engine::client(runtime_->tls_context, name);
  connection_->start_tls(std::move(engine), [this](bool ok) {
    const tls::Engine* engine = connection_->tls();
    if (!ok) {
      bool verify = engine && engine->failure() == tls::Engine::Failure::Verify;
      std::string detail = engine && !engine->error().empty()
                               ? engine->error()
                               : "connection closed during TLS handshake";
      return fail(verify ? FailureReason::TlsVerify : FailureReason::TlsHandshake, detail);
    }
    trace_.tls_ms = elapsed_ms();
    trace_.tls_version = engine->protocol_version();
    trace_.tls_cipher = engine->cipher();
    if (engine->certificate_requested()) {
      const std::string& ours = runtime_->tls_context->client_certificate();
      trace_.client_certificate = ours.empty() ? "none configured" : ours;
    }
    if (runtime_->endpoint.tls == TlsMode::Implicit) {
      handshake_.mark_tls_active();  // the greeting comes next, inside TLS
      arm_timer(timeouts_.greeting, FailureReason::GreetingTimeout, "no greeting");
      return;
    }
    perform(handshake_.on_tls_established());
  });
}

void UpstreamConnection::on_data(std::string_view plaintext) {
  // A TLS record (handshake 0x16 or alert 0x15, version 3.x) where the 220 greeting was due:
  // the port speaks TLS from the first byte. Said at once instead of "malformed reply".
  if (phase_ == Phase::Handshaking && trace_.greeting.empty() && !connection_->tls() &&
      parser_.buffered() == 0 && plaintext.size() >= 2 &&
      (plaintext[0] == 0x15 || plaintext[0] == 0x16) && plaintext[1] == 0x03) {
    return fail(FailureReason::Protocol,
                "TLS bytes where the SMTP greeting was due: this port speaks implicit TLS; try "
                "tls = \"implicit\"");
  }
  ++batch_;
  in_batch_ = true;
  parser_.feed(plaintext);
  // Callbacks never free this connection synchronously (net::Loop::defer_delete).
  while (phase_ != Phase::Closed) {
    auto reply = parser_.next();
    if (!reply) break;
    on_reply(*reply);
  }
  in_batch_ = false;
  if (phase_ != Phase::Closed && parser_.failed())
    fail(
        phase_ == Phase::Handshaking ? FailureReason::Protocol : FailureReason::TransactionProtocol,
        "malformed reply: " + parser_.error());
}

void UpstreamConnection::on_reply(const smtp::Reply& reply) {
  if (log::transcript()) {
    for (std::size_t i = 0; i < reply.lines.size(); ++i)
      transcribe("in", std::to_string(reply.code) + (i + 1 < reply.lines.size() ? "-" : " ") +
                           reply.lines[i]);
  }
  switch (phase_) {
    case Phase::Handshaking:
      timer_.stop();
      if (trace_.greeting.empty()) trace_.greeting = reply.summary();
      return perform(handshake_.on_reply(reply));
    case Phase::Command:
      if (in_batch_ && sent_in_batch_ == batch_) {
        // Received before the command (or final dot) it would answer was sent: the
        // upstream is out of step, and taking it (a 250 right behind the 354) could report
        // a message as accepted that the upstream never confirmed.
        return fail(FailureReason::TransactionProtocol, "reply out of turn: " + reply.summary());
      }
      timer_.stop();
      phase_ = Phase::Ready;
      answered_at_ = Clock::now();
      if (awaiting_end_of_data_) {  // any final reply ends the transaction
        awaiting_end_of_data_ = false;
        transaction_open_ = false;
      }
      return deliver(reply);
    case Phase::Body:
      // Answered before the final dot: the rest of the body would be read as commands.
      if (reply.positive())
        return fail(FailureReason::TransactionProtocol,
                    "reply before end of data: " + reply.summary());
      {
        auto callback = std::move(response_callback_);
        response_callback_ = nullptr;
        fail(FailureReason::TransactionProtocol, "refused before end of data");
        if (callback) callback(UpstreamResponse{reply});  // the refusal is the answer
      }
      return;
    default:
      // Unsolicited while idle: typically "421 idle timeout". No longer usable.
      phase_ = Phase::Closed;
      if (connection_) connection_->close();
      return;
  }
}

void UpstreamConnection::perform(const smtp::HandshakeAction& action) {
  using Kind = smtp::HandshakeAction::Kind;
  switch (action.kind) {
    case Kind::Send:
      if (log::transcript()) {
        std::string_view line(action.data);
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
        transcribe("out", action.sensitive ? redacted_auth(line) : std::string(line));
      }
      connection_->send(action.data);
      arm_timer(timeouts_.handshake, FailureReason::Protocol, "no reply to ",
                printable_command(action));
      return;
    case Kind::StartTls:
      return start_tls();
    case Kind::Ready: {
      timer_.stop();
      phase_ = Phase::Ready;
      answered_at_ = Clock::now();
      ready_after_ = Clock::now() - started_;
      trace_.ready_ms = elapsed_ms();
      trace_.authenticated = handshake_.authenticated();
      trace_.extensions = handshake_.capabilities().keywords;
      auto callback = std::move(ready_callback_);
      ready_callback_ = nullptr;
      if (callback) callback(std::nullopt);
      return;
    }
    case Kind::Fail:
      if (action.token_refused && retry_with_fresh_token(action)) return;
      return fail(action.reason, action.detail, action.refusal);
  }
}

// Once per connection attempt: the token may have expired (or been rotated) since it was
// cached, so read the source again and, if that gives a different token, AUTH again on the
// same session (RFC 4954 allows another AUTH after a failed one).
bool UpstreamConnection::retry_with_fresh_token(const smtp::HandshakeAction& refused) {
  if (!runtime_->oauth_token || oauth_token_retried_) return false;
  oauth_token_retried_ = true;
  runtime_->oauth_token->invalidate();
  // Like the first token, a fresh one may come from a command: the session waits (in
  // Handshaking, bounded by the command's timeout) without holding up the loop.
  token_request_ = runtime_->oauth_token->fetch(
      loop_,
      [this, reason = refused.reason, detail = refused.detail](OAuthTokenSource::Token fresh) {
        token_request_.reset();
        if (!fresh.problem.empty() || fresh.value == oauth_token_sent_) return fail(reason, detail);
        oauth_token_sent_ = fresh.value;
        perform(handshake_.retry_with_token(std::move(fresh.value)));
      });
  return true;
}

void UpstreamConnection::on_closed(int status) {
  bool in_handshake = phase_ == Phase::Handshaking;
  std::string detail = status == UV_EOF ? "connection closed by upstream"
                                        : std::string("connection error: ") + uv_strerror(status);
  fail(in_handshake ? FailureReason::Closed : FailureReason::TransactionReset, detail);
}

// The one way out: whoever waits (for "ready" or for a reply) hears why, once.
void UpstreamConnection::fail(FailureReason reason, std::string detail,
                              std::optional<smtp::Reply> refusal) {
  if (phase_ == Phase::Closed) return;
  phase_ = Phase::Closed;
  timer_.stop();
  token_request_.reset();
  resolution_.reset();
  if (racer_) loop_.defer_delete(std::move(racer_));
  if (streamer_) streamer_->stop();
  if (connection_) connection_->close();
  AttemptFailure failure{reason, std::move(detail), std::move(refusal)};
  if (auto callback = std::move(ready_callback_)) {
    ready_callback_ = nullptr;
    return callback(failure);
  }
  deliver(failure);
}

void UpstreamConnection::deliver(UpstreamResponse response) {
  auto callback = std::move(response_callback_);
  response_callback_ = nullptr;
  if (callback) callback(response);
}

void UpstreamConnection::await_reply(config::Duration timeout, std::string_view what,
                                     std::string_view detail) {
  phase_ = Phase::Command;
  arm_timer(timeout, FailureReason::TransactionTimeout, what, detail);
}

void UpstreamConnection::command(const std::string& line, ResponseCallback callback) {
  response_callback_ = std::move(callback);
  sent_in_batch_ = in_batch_ ? batch_ : 0;
  if (!usable()) {
    phase_ = Phase::Closed;
    return deliver(AttemptFailure{FailureReason::TransactionReset, "connection is not usable"});
  }
  if (!smtp::is_single_command_line(line)) {
    // Never on the wire: a CR or LF would end this command early and start another.
    return deliver(AttemptFailure{FailureReason::TransactionProtocol,
                                  "refused to send a command holding CR, LF or NUL"});
  }
  transcribe("out", line);
  if (line.starts_with("MAIL ")) transaction_open_ = true;
  connection_->send(line + "\r\n");
  await_reply(timeouts_.command, "no reply to ", std::string_view(line).substr(0, line.find(' ')));
}

void UpstreamConnection::revalidate(config::Duration limit, config::Duration check_after,
                                    ReadyCallback callback) {
  // The check costs a round trip per message on a busy relay. A server that answered
  // moments ago, with no transaction left open, was there then: NAT state and idle
  // timers last minutes. Should it have closed since, the next command fails as a reset,
  // which the transaction takes for a stale pooled connection (a fresh one, no blame).
  // Not called back from here: the caller is in the middle of launching attempts. The
  // callback waits in ready_callback_, so a failure before the next turn (the server's
  // FIN read in this same turn: fail() stops the timer) is reported through it.
  if (!transaction_open_ && check_after.count() > 0 && Clock::now() - answered_at_ < check_after) {
    ready_callback_ = std::move(callback);
    timer_.start(std::chrono::milliseconds(0), [this]() {
      auto ready = std::exchange(ready_callback_, nullptr);
      if (!ready) return;
      if (!usable())  // closed meanwhile by a path that does not report (an unsolicited 421)
        return ready(AttemptFailure{FailureReason::Closed, "closed while idle in the pool"});
      ready(std::nullopt);
    });
    return;
  }
  // A peer that vanished without a FIN (NAT state dropped, host rebooted) never answers;
  // a live one answers RSET within a round trip, so do not wait command_timeout for it.
  command("RSET", [this, callback](const UpstreamResponse& response) {
    if (const AttemptFailure* failure = failure_of(response)) return callback(*failure);
    const smtp::Reply& reply = std::get<smtp::Reply>(response);
    if (reply.success()) {
      transaction_open_ = false;
      return callback(std::nullopt);
    }
    callback(AttemptFailure{FailureReason::Protocol, "RSET refused: " + reply.summary()});
  });
  if (phase_ == Phase::Command) arm_timer(limit, FailureReason::Closed, "no reply to RSET");
}

void UpstreamConnection::send_body(const MessageBody& body,
                                   std::optional<BodyStreamer::Rewrite> rewrite,
                                   ResponseCallback callback) {
  response_callback_ = std::move(callback);
  sent_in_batch_ = in_batch_ ? batch_ : 0;
  if (!usable()) {
    phase_ = Phase::Closed;
    return deliver(AttemptFailure{FailureReason::TransactionReset, "connection is not usable"});
  }
  phase_ = Phase::Body;
  transcribe("out", "<message body, " + std::to_string(body.size()) + " octets, not logged>");
  transcribe("out", ".");
  streamer_ = std::make_unique<BodyStreamer>(*connection_, body, std::move(rewrite));
  streamer_->start(
      [this]() {
        arm_timer(timeouts_.command, FailureReason::TransactionTimeout,
                  "upstream did not take more of the message");
      },
      [this](std::optional<std::string> error) {
        // The finished streamer stays until the next body or this connection goes.
        if (error) return fail(FailureReason::TransactionProtocol, *error);
        awaiting_end_of_data_ = true;
        await_reply(timeouts_.data, "no reply after end of data", {});
      });
}

void UpstreamConnection::quit() {
  // Whoever was waiting for an answer has let go of this connection (a client that left
  // mid-command): its callbacks point into objects that are about to be freed.
  ready_callback_ = nullptr;
  response_callback_ = nullptr;
  timer_.stop();
  token_request_.reset();
  if (phase_ == Phase::Closed || !connection_) {
    phase_ = Phase::Closed;
    return;
  }
  bool mid_body = phase_ == Phase::Body;
  phase_ = Phase::Closed;
  if (streamer_) streamer_->stop();
  if (mid_body) {
    // Mid-body, QUIT would become message content: just close (the upstream discards
    // a message without its final dot).
    connection_->close();
    return;
  }
  transcribe("out", "QUIT");
  connection_->send("QUIT\r\n");
  connection_->finish();
}

}  // namespace portrelay::relay
