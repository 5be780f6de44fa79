#include "portrelay/relay/upstream_connection.hpp"

#include <algorithm>

#include "portrelay/base/log.hpp"
#include "portrelay/net/tcp_listener.hpp"

namespace portrelay::relay {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kBodyChunk = 64 * 1024;
constexpr std::size_t kMaxQueuedBytes = 1024 * 1024;

// A command as it may appear in logs and error details.
std::string printable_command(const smtp::HandshakeAction& action) {
  if (action.sensitive) return "AUTH";
  std::string text = action.data;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

}  // namespace

UpstreamConnection::UpstreamConnection(uv_loop_t* loop, const EndpointRuntime& endpoint,
                                       const UpstreamTimeouts& timeouts, std::string helo_name)
    : loop_(loop),
      runtime_(endpoint),
      timeouts_(timeouts),
      handshake_(smtp::ClientHandshake::Options{std::move(helo_name), endpoint.endpoint.tls,
                                                endpoint.endpoint.credentials.username,
                                                endpoint.password}),
      address_timer_(loop),
      timer_(loop) {}

UpstreamConnection::~UpstreamConnection() = default;

double UpstreamConnection::elapsed_ms() const {
  return std::chrono::duration<double, std::milli>(Clock::now() - started_).count();
}

std::string UpstreamConnection::tls_version() const {
  if (!connection_ || !connection_->tls()) return "";
  return connection_->tls()->protocol_version();
}

void UpstreamConnection::arm_timer(config::Duration timeout, FailureReason reason,
                                   std::string what) {
  timer_.start(timeout, [this, reason, what = std::move(what)]() {
    if (ready_)
      fail_response(reason, what);
    else
      fail_connect(reason, what);
  });
}

void UpstreamConnection::connect(ReadyCallback callback) {
  ready_callback_ = std::move(callback);
  started_ = Clock::now();
  const auto& endpoint = runtime_.endpoint;
  if (endpoint.credentials.configured() && !runtime_.password_problem.empty())
    return fail_connect(FailureReason::AuthFailed, "no password: " + runtime_.password_problem);
  arm_timer(
      timeouts_.connect, FailureReason::Dns,
      "cannot resolve " + endpoint.host + " within " + config::format_duration(timeouts_.connect));
  auto on_resolved = [this](int status, std::vector<sockaddr_storage> addresses) {
    resolution_.reset();  // finished; the request has already detached from it
    if (status != 0)
      return fail_connect(FailureReason::Dns,
                          "cannot resolve " + runtime_.endpoint.host + ": " + uv_strerror(status));
    addresses_ = std::move(addresses);
    trace_.resolved_ms = elapsed_ms();
    for (const auto& address : addresses_)
      trace_.addresses.push_back(net::format_address(reinterpret_cast<const sockaddr*>(&address)));
    // One deadline for the whole TCP phase, however many addresses are tried.
    arm_timer(timeouts_.connect, FailureReason::Timeout,
              "no answer from " + runtime_.endpoint.host + ":" +
                  std::to_string(runtime_.endpoint.port) + " (" +
                  std::to_string(addresses_.size()) + " address(es)) within " +
                  config::format_duration(timeouts_.connect));
    connect_next_address();
  };
  if (endpoint.addresses.empty()) {
    resolution_ = net::Resolution::start(loop_, endpoint.host, endpoint.port, on_resolved);
    return;
  }
  std::vector<sockaddr_storage> pinned;
  for (const auto& text : endpoint.addresses) {
    sockaddr_storage address{};
    net::make_sockaddr(text, endpoint.port, address);  // validated by the config loader
    pinned.push_back(address);
  }
  on_resolved(0, std::move(pinned));
}

void UpstreamConnection::connect_next_address() {
  if (next_address_ >= addresses_.size()) {
    if (pending_.empty()) fail_connect(last_address_failure_.reason, last_address_failure_.detail);
    return;
  }
  const sockaddr_storage& address = addresses_[next_address_++];
  auto stream = std::make_unique<net::TcpStream>(loop_);
  net::TcpStream* raw = stream.get();
  std::string target = net::format_address(reinterpret_cast<const sockaddr*>(&address));
  pending_.push_back({std::move(stream), target});
  // A silent address must not hold up the others: start the next one after a stagger.
  if (next_address_ < addresses_.size())
    address_timer_.start(timeouts_.address_stagger, [this]() { connect_next_address(); });
  int rc = raw->connect(reinterpret_cast<const sockaddr*>(&address), [this, raw](int status) {
    if (status != 0) return on_address_failed(raw, status);
    auto it = std::find_if(pending_.begin(), pending_.end(),
                           [raw](const PendingTcp& p) { return p.stream.get() == raw; });
    trace_.connected_address = it->target;
    auto winner = std::move(it->stream);
    pending_.clear();  // the other addresses' attempts are cancelled
    address_timer_.stop();
    on_tcp_connected(std::move(winner));
  });
  if (rc != 0) on_address_failed(raw, rc);
}

void UpstreamConnection::on_address_failed(net::TcpStream* stream, int status) {
  auto it = std::find_if(pending_.begin(), pending_.end(),
                         [stream](const PendingTcp& p) { return p.stream.get() == stream; });
  if (it == pending_.end()) return;
  last_address_failure_ = {reason_from_connect_error(status),
                           "connect to " + it->target + ": " + uv_strerror(status)};
  // Called from the stream's own connect callback, which touches nothing after us.
  pending_.erase(it);
  connect_next_address();  // a refused address hands over at once
}

void UpstreamConnection::on_tcp_connected(std::unique_ptr<net::TcpStream> stream) {
  timer_.stop();
  trace_.tcp_ms = elapsed_ms();
  connection_ = std::make_unique<net::Connection>(std::move(stream));
  connection_->start([this](std::string_view data) { on_data(data); },
                     [this](int status) { on_closed(status); });
  arm_timer(timeouts_.greeting, FailureReason::GreetingTimeout,
            "no greeting within " + config::format_duration(timeouts_.greeting));
  if (runtime_.endpoint.tls == config::TlsMode::Implicit) start_tls();
}

void UpstreamConnection::start_tls() {
  const auto& endpoint = runtime_.endpoint;
  const std::string& name =
      endpoint.tls_server_name.empty() ? endpoint.host : endpoint.tls_server_name;
  // RFC 3207 4: plaintext that arrived before the handshake (e.g. injected after the
  // 220) must not be read as if it came over TLS.
  parser_.clear();
  if (endpoint.tls == config::TlsMode::Implicit)
    arm_timer(timeouts_.greeting, FailureReason::TlsHandshake,
              "TLS handshake and greeting not done within " +
                  config::format_duration(timeouts_.greeting));
  else
    arm_timer(timeouts_.greeting, FailureReason::TlsHandshake,
              "TLS handshake not done within " + config::format_duration(timeouts_.greeting));
  auto engine = tls::Engine::client(runtime_.tls_context, name);
  connection_->start_tls(std::move(engine), [this](bool ok) {
    const tls::Engine* engine = connection_->tls();
    if (!ok) {
      bool verify = engine && engine->failure() == tls::Engine::Failure::Verify;
      std::string detail = engine && !engine->error().empty()
                               ? engine->error()
                               : "connection closed during TLS handshake";
      return fail_connect(verify ? FailureReason::TlsVerify : FailureReason::TlsHandshake, detail);
    }
    trace_.tls_ms = elapsed_ms();
    trace_.tls_version = engine->protocol_version();
    trace_.tls_cipher = engine->cipher();
    if (runtime_.endpoint.tls == config::TlsMode::Implicit) {
      handshake_.mark_tls_active();  // the greeting comes next, inside TLS
      arm_timer(timeouts_.greeting, FailureReason::GreetingTimeout,
                "no greeting within " + config::format_duration(timeouts_.greeting));
      return;
    }
    perform(handshake_.on_tls_established());
  });
}

void UpstreamConnection::on_data(std::string_view plaintext) {
  ++batch_;
  in_batch_ = true;
  parser_.feed(plaintext);
  while (auto reply = parser_.next()) {
    // Callbacks never free this connection synchronously (net::Loop::defer_delete).
    on_reply(*reply);
    if (broken_) break;
  }
  in_batch_ = false;
  if (broken_) return;
  if (parser_.failed()) {
    std::string detail = "malformed reply: " + parser_.error();
    ready_ ? fail_response(FailureReason::Protocol, detail)
           : fail_connect(FailureReason::Protocol, detail);
  }
}

void UpstreamConnection::on_reply(const smtp::Reply& reply) {
  if (!ready_) {
    timer_.stop();
    if (trace_.greeting.empty()) trace_.greeting = reply.summary();
    return perform(handshake_.on_reply(reply));
  }
  if (response_callback_ && in_batch_ && sent_in_batch_ == batch_) {
    // This reply was received before the command (or body) it would answer was sent: the
    // upstream is out of step, and taking it (a 250 right behind the 354) could report
    // a message as accepted that the upstream never confirmed.
    return fail_response(FailureReason::Protocol, "reply out of turn: " + reply.summary());
  }
  if (response_callback_ && body_) {
    // Answered before the final dot: the rest of the body would be read as commands.
    broken_ = true;
    body_ = nullptr;
    if (connection_) connection_->close();
    if (reply.positive())
      return fail_response(FailureReason::Protocol, "reply before end of data: " + reply.summary());
  }
  if (response_callback_) {
    timer_.stop();
    auto callback = std::move(response_callback_);
    response_callback_ = nullptr;
    return callback(UpstreamResponse{reply});
  }
  // Unsolicited: typically "421 idle timeout". The connection is no longer usable.
  broken_ = true;
  if (connection_) connection_->close();
}

void UpstreamConnection::perform(const smtp::HandshakeAction& action) {
  using Kind = smtp::HandshakeAction::Kind;
  switch (action.kind) {
    case Kind::Send:
      connection_->send(action.data);
      arm_timer(timeouts_.greeting, FailureReason::Protocol,
                "no reply to " + printable_command(action) + " within " +
                    config::format_duration(timeouts_.greeting));
      return;
    case Kind::StartTls:
      return start_tls();
    case Kind::Ready: {
      timer_.stop();
      ready_ = true;
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
      return fail_connect(action.reason, action.detail);
  }
}

void UpstreamConnection::on_closed(int status) {
  std::string detail = status == UV_EOF ? "connection closed by upstream"
                                        : std::string("connection error: ") + uv_strerror(status);
  if (!ready_) return fail_connect(FailureReason::Closed, detail);
  fail_response(FailureReason::TransactionReset, detail);
}

void UpstreamConnection::fail_connect(FailureReason reason, std::string detail) {
  broken_ = true;
  timer_.stop();
  resolution_.reset();
  pending_.clear();
  address_timer_.stop();
  if (connection_) connection_->close();
  auto callback = std::move(ready_callback_);
  ready_callback_ = nullptr;
  if (callback) callback(AttemptFailure{reason, std::move(detail)});
}

void UpstreamConnection::fail_response(FailureReason reason, std::string detail) {
  broken_ = true;
  timer_.stop();
  body_ = nullptr;
  if (connection_) connection_->close();
  auto callback = std::move(response_callback_);
  response_callback_ = nullptr;
  if (callback) callback(UpstreamResponse{AttemptFailure{reason, std::move(detail)}});
}

void UpstreamConnection::command(const std::string& line, ResponseCallback callback) {
  response_callback_ = std::move(callback);
  sent_in_batch_ = in_batch_ ? batch_ : 0;
  if (!usable()) return fail_response(FailureReason::TransactionReset, "connection is not usable");
  connection_->send(line + "\r\n");
  std::string verb = line.substr(0, line.find(' '));
  arm_timer(timeouts_.command, FailureReason::TransactionTimeout,
            "no reply to " + verb + " within " + config::format_duration(timeouts_.command));
}

void UpstreamConnection::revalidate(config::Duration limit, ReadyCallback callback) {
  command("RSET", [callback](const UpstreamResponse& response) {
    if (const AttemptFailure* failure = failure_of(response)) return callback(*failure);
    const smtp::Reply& reply = std::get<smtp::Reply>(response);
    if (reply.success()) return callback(std::nullopt);
    callback(AttemptFailure{FailureReason::Protocol, "RSET refused: " + reply.summary()});
  });
  // A peer that vanished without a FIN (NAT state dropped, host rebooted) never answers;
  // a live one answers RSET within a round trip, so do not wait command_timeout for it.
  if (response_callback_)
    arm_timer(limit, FailureReason::Closed,
              "no reply to RSET within " + config::format_duration(limit));
}

void UpstreamConnection::send_body(const MessageBody& body, ResponseCallback callback) {
  response_callback_ = std::move(callback);
  sent_in_batch_ = in_batch_ ? batch_ : 0;
  if (!usable()) return fail_response(FailureReason::TransactionReset, "connection is not usable");
  body_ = &body;
  body_offset_ = 0;
  stuffer_ = smtp::DotStuffer();
  pump_body();
}

void UpstreamConnection::pump_body() {
  if (!body_ || !connection_) return;
  std::string chunk, wire;
  while (body_offset_ < body_->size() && connection_->write_queue_size() < kMaxQueuedBytes) {
    if (!body_->read(body_offset_, kBodyChunk, chunk) || chunk.empty())
      return fail_response(FailureReason::Protocol, "cannot read the message body back");
    body_offset_ += chunk.size();
    wire.clear();
    stuffer_.encode(chunk, wire);
    connection_->send(wire);
  }
  if (body_offset_ < body_->size()) {
    // The socket is slower than the file: continue when the queue has drained.
    arm_timer(
        timeouts_.command, FailureReason::TransactionTimeout,
        "upstream stopped reading the message for " + config::format_duration(timeouts_.command));
    connection_->on_drained([this]() { pump_body(); });
    return;
  }
  connection_->on_drained(nullptr);
  wire.clear();
  stuffer_.finish(wire);
  connection_->send(wire);
  body_ = nullptr;
  arm_timer(timeouts_.data, FailureReason::TransactionTimeout,
            "no reply after end of data within " + config::format_duration(timeouts_.data));
}

void UpstreamConnection::quit() {
  // Whoever was waiting for an answer has let go of this connection (a client that left
  // mid-command): its callbacks point into objects that are about to be freed.
  ready_callback_ = nullptr;
  response_callback_ = nullptr;
  timer_.stop();
  if (connection_) connection_->on_drained(nullptr);
  if (!connection_ || broken_) return;
  if (body_) {
    // Mid-body, QUIT would become message content: just close (the upstream discards
    // a message without its final dot).
    broken_ = true;
    connection_->close();
    return;
  }
  connection_->send("QUIT\r\n");
  connection_->finish();
  broken_ = true;
}

}  // namespace portrelay::relay
