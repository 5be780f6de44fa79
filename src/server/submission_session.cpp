#include "portrelay/server/submission_session.hpp"

#include <algorithm>

#include "portrelay/base/log.hpp"
#include "portrelay/relay/message_ledger.hpp"
#include "portrelay/server/auth_failure_tracker.hpp"
#include "portrelay/server/authenticator.hpp"

namespace portrelay::server {
namespace {

// Memory per session is bounded by these two plus one socket read (up to 64 KiB, freed
// after the read callback): a client that pipelines commands and never reads its replies
// costs about 100-150 KiB, whatever it sends (bench/pipeline_memory.sh).
//
// Unprocessed input: commands pipelined while the session waits (for the upstream, or for
// its replies to drain). Reading stops above this; DATA is consumed as it arrives.
constexpr std::size_t kMaxBufferedInput = 16 * 1024;
// Replies not yet taken by the kernel. The ServerSession stops processing commands at this
// mark (policy.max_queued_output, checked before each command rather than after a whole
// read), and reading stops until the queue has drained. The kernel's socket buffer takes
// far more than this from a client that reads, so it only binds a client that does not.
constexpr std::size_t kMaxQueuedOutput = 16 * 1024;
constexpr std::chrono::seconds kCloseLinger{5};

smtp::ServerPolicy with_output_cap(smtp::ServerPolicy policy) {
  policy.max_queued_output = kMaxQueuedOutput;
  return policy;
}

}  // namespace

SubmissionSession::SubmissionSession(std::shared_ptr<const SessionEnvironment> environment,
                                     smtp::ServerPolicy policy, bool implicit_tls,
                                     std::unique_ptr<net::TcpStream> stream, std::string id,
                                     std::string client_ip,
                                     std::function<void(SubmissionSession*)> on_finished)
    : environment_(std::move(environment)),
      id_(std::move(id)),
      peer_(stream->peer_address()),
      client_ip_(std::move(client_ip)),
      connection_(std::make_unique<net::Connection>(std::move(stream))),
      session_(with_output_cap(std::move(policy)), *this, implicit_tls),
      sink_(environment_->make_sink(id_)),
      timer_(environment_->loop->uv()),
      auth_delay_(environment_->loop->uv()),
      on_finished_(std::move(on_finished)) {
  environment_->metrics->session_opened();
}

SubmissionSession::~SubmissionSession() { environment_->metrics->session_closed(); }

void SubmissionSession::start(bool allowed, bool implicit_tls) {
  log::info("session_open",
            {{"session", id_}, {"peer", peer_}, {"allowed", allowed ? "yes" : "no"}});
  connection_->start([this](std::string_view bytes) { on_input(bytes); },
                     [this](int) { finish("client"); });
  if (!allowed) return session_.refuse("Access denied: client address not in the allow list");
  if (implicit_tls) {
    connection_->start_tls(tls::Engine::server(environment_->tls_context), [this](bool ok) {
      if (!ok) {
        log::warn("tls_failed", {{"session", id_}, {"detail", connection_->tls()->error()}});
        return finish("tls_failed");
      }
      session_.start();
      after_event();
    });
    timer_.start(environment_->command_timeout, [this]() { finish("tls_timeout"); });
    return;
  }
  session_.start();
  after_event();
}

// A session that ends inside feed() or resume() (QUIT, a timeout reply, a refusal) is only
// marked finished: its owner frees it through Loop::defer_delete, on a later turn, so the
// code after those calls still runs on a live object and after_event() sees finished_.
void SubmissionSession::on_input(std::string_view bytes) {
  session_.feed(bytes);
  after_event();
}

void SubmissionSession::after_event() {
  if (closing_ || finished_) return;
  // Commands that waited for their replies to drain: more rounds while the replies leave
  // at once. A reply the kernel takes is no longer held by us (TcpStream writes before it
  // queues), so this holds at most kMaxQueuedOutput; each round consumes buffered commands,
  // so it ends. When replies queue up, the rest waits for them to drain (below).
  while (session_.output_blocked() && connection_->write_queue_size() < kMaxQueuedOutput) {
    session_.resume();
    if (closing_ || finished_) return;
  }
  using Phase = smtp::ServerSession::Phase;
  const Phase phase = session_.phase();
  const bool progressed = phase != timed_phase_ || session_.commands_received() != timed_commands_;
  if (session_.commands_received() != timed_commands_)
    last_progress_ = std::chrono::steady_clock::now();
  timed_phase_ = phase;
  timed_commands_ = session_.commands_received();
  if (!engaged_reported_ && session_.engaged()) {
    engaged_reported_ = true;
    if (environment_->on_engaged) environment_->on_engaged();
  }
  switch (phase) {
    case Phase::Command:
      // Bytes of an unfinished line do not restart it (slowloris).
      if (progressed || !timer_.active())
        timer_.start(environment_->command_timeout, [this]() { session_.on_timeout(); });
      break;
    case Phase::Data:
      timer_.start(environment_->data_timeout, [this]() { session_.on_timeout(); });
      break;
    case Phase::Waiting:
      if (tls_handshaking_)  // waiting for the client, not the upstream: bound it
        timer_.start(environment_->command_timeout, [this]() { finish("tls_timeout"); });
      else
        timer_.stop();  // the relay enforces the upstream's timeouts
      break;
    case Phase::Closed:
      return;
  }
  if (connection_->write_queue_size() >= kMaxQueuedOutput || session_.output_blocked()) {
    connection_->pause_reading();
    connection_->on_drained([this]() {
      connection_->on_drained(nullptr);
      after_event();
    });
  } else if (session_.buffered_input() > kMaxBufferedInput) {
    connection_->pause_reading();
  } else {
    connection_->resume_reading();
  }
}

// The sink never calls back once it is destroyed (MessageSink's contract), and it dies with
// this session: no liveness check is needed here.
std::function<void(const smtp::Reply&)> SubmissionSession::completer() {
  return [this](const smtp::Reply& reply) {
    session_.complete(reply);
    after_event();
  };
}

void SubmissionSession::send(std::string bytes) { connection_->send(bytes); }

std::uint64_t SubmissionSession::message_size_limit(std::uint64_t configured) const {
  return environment_->message_size_limit ? environment_->message_size_limit(configured)
                                          : configured;
}

std::size_t SubmissionSession::queued_output() const { return connection_->write_queue_size(); }

void SubmissionSession::close_after_send() {
  if (closing_) return;
  closing_ = true;
  // Give the final reply time to leave, but never keep a session around for long.
  connection_->finish([this]() { finish("server"); });
  timer_.start(kCloseLinger, [this]() { finish("server"); });
}

void SubmissionSession::force_close() { finish("shutdown"); }

void SubmissionSession::finish(const char* by) {
  if (finished_) return;
  finished_ = true;
  // by: client (hung up), server (after QUIT, 421, refusal), shutdown, tls_failed, ...
  log::info("session_closed", {{"session", id_}, {"by", by}});
  timer_.stop();
  connection_->close();
  if (on_finished_) on_finished_(this);
}

void SubmissionSession::mail_from(const smtp::PathArgument& sender) {
  given_.clear();
  original_sender_ = sender.address;
  // The [rewrite] of acceptance first: the policy and the route see what leaves.
  std::optional<smtp::PathArgument> rewritten;
  if (environment_->identity) {
    std::string address = environment_->identity->accepted_sender(sender.address);
    if (address != sender.address) {
      rewritten = sender;
      rewritten->address = std::move(address);
      rewritten->original_address = sender.address;
    }
  }
  const smtp::PathArgument& accepted = rewritten ? *rewritten : sender;  // no copy if unchanged
  if (const auto& policy = environment_->envelope_policy) {
    const std::vector<std::string>* own = user_.empty() || !environment_->authenticator
                                              ? nullptr
                                              : environment_->authenticator->allowed_senders(user_);
    const bool replaced =
        environment_->identity && environment_->identity->replaces_sender(sender.address);
    if (auto refusal = policy->check_sender(sender.address, accepted.address, replaced, own)) {
      relay::MessageLedger(*environment_->metrics).rejected();  // its only owner: the session
      log::warn("sender_refused", {{"session", id_},
                                   {"from", sender.address.empty() ? "<>" : sender.address},
                                   {"user", user_},
                                   {"reply", refusal->summary()}});
      return completer()(*refusal);
    }
  }
  sink_->sender(accepted, completer());
}

void SubmissionSession::rcpt_to(const smtp::PathArgument& recipient) {
  if (!environment_->envelope_policy) return sink_->recipient(recipient, completer());
  auto mapped = environment_->envelope_policy->map_recipient(recipient.address);
  if (mapped.refusal) {
    log::warn("recipient_refused",
              {{"session", id_}, {"to", recipient.address}, {"reply", mapped.refusal->summary()}});
    return completer()(*mapped.refusal);
  }
  if (mapped.addresses.size() == 1 && mapped.addresses.front() == recipient.address) {
    // Named already (by the client, or as an alias's target): one copy is enough.
    if (std::find(given_.begin(), given_.end(), recipient.address) != given_.end())
      return completer()(smtp::make_reply(250, "2.1.5", "Ok (already a recipient)"));
    given_.push_back(recipient.address);
    return sink_->recipient(recipient, completer());
  }
  std::string targets;
  for (const std::string& address : mapped.addresses)
    targets += (targets.empty() ? "" : ",") + address;
  log::info("alias", {{"session", id_}, {"to", recipient.address}, {"targets", targets}});
  expansion_ = Expansion{recipient, std::move(mapped.addresses), 0, std::nullopt, std::nullopt};
  add_next_target();
}

// The targets go to the sink one after the other; the client hears 2xx when any was
// accepted (the others are logged by the sink), else the last refusal. A target already
// named in this transaction is not named twice.
void SubmissionSession::add_next_target() {
  while (expansion_.next < expansion_.targets.size()) {
    const std::string& target = expansion_.targets[expansion_.next++];
    if (std::find(given_.begin(), given_.end(), target) != given_.end()) {
      if (!expansion_.accepted) expansion_.accepted = smtp::make_reply(250, "2.1.5", "Ok");
      continue;
    }
    given_.push_back(target);
    smtp::PathArgument one = expansion_.recipient;
    one.address = target;
    sink_->recipient(one, [this, target](const smtp::Reply& reply) {
      if (reply.success()) {
        if (!expansion_.accepted) expansion_.accepted = reply;
      } else {
        log::warn("alias_target_refused",
                  {{"session", id_}, {"to", target}, {"reply", reply.summary()}});
        expansion_.refused = reply;
      }
      add_next_target();
    });
    return;
  }
  const smtp::Reply answer = expansion_.accepted ? *expansion_.accepted : *expansion_.refused;
  completer()(answer);
}

void SubmissionSession::data_begin() {
  sink_->body().clear();
  header_filter_.reset();
  if (!environment_->identity) return;
  smtp::HeaderRewrite plan =
      environment_->identity->acceptance_plan(original_sender_, environment_->add_missing_headers);
  if (!plan.empty()) header_filter_.emplace(std::move(plan));
}

void SubmissionSession::data_chunk(std::string_view content) {
  // Past the header section the content goes to the sink as it is, without a copy.
  if (!header_filter_ || header_filter_->passing()) {
    sink_->body().append(content);
    return;
  }
  filtered_.clear();
  const std::string_view rest = header_filter_->feed(content, filtered_);
  if (!filtered_.empty()) sink_->body().append(filtered_);
  if (!rest.empty()) sink_->body().append(rest);
}

void SubmissionSession::data_end() {
  if (header_filter_) {
    filtered_.clear();
    header_filter_->finish(filtered_);
    if (!filtered_.empty()) sink_->body().append(filtered_);
    note_header_rewrite();
    header_filter_.reset();
    filtered_ = std::string();
  }
  sink_->commit(completer());
}

void SubmissionSession::note_header_rewrite() {
  if (header_filter_->gave_up()) {
    log::warn("header_not_rewritten",
              {{"session", id_}, {"detail", "header section longer than 256 KiB"}});
    return;
  }
  const auto& result = header_filter_->result();
  if (!result || !result->from_replaced) return;
  environment_->metrics->from_rewritten("accept");
  log::info("from_rewritten", {{"session", id_}, {"original_from", result->original_from}});
  if (result->dkim_signature_broken) {
    environment_->metrics->dkim_signature_broken("accept");
    log::warn("dkim_signature_broken",
              {{"session", id_},
               {"original_from", result->original_from},
               {"detail", "From is signed by a DKIM-Signature (h=) and was rewritten"}});
  }
}

void SubmissionSession::data_rejected(smtp::DataReader::Violation violation) {
  relay::MessageLedger(*environment_->metrics).rejected();  // its only owner: the session
  log::warn("message_rejected", {{"session", id_}, {"reason", smtp::to_string(violation)}});
  header_filter_.reset();
  sink_->reset();
}

void SubmissionSession::reset() {
  given_.clear();
  expansion_ = Expansion{};
  header_filter_.reset();
  sink_->reset();
}

void SubmissionSession::start_tls() {
  tls_handshaking_ = true;
  // connection_ dies with this session and never calls back after that.
  connection_->start_tls(tls::Engine::server(environment_->tls_context), [this](bool ok) {
    tls_handshaking_ = false;
    if (!ok) {
      log::warn("tls_failed", {{"session", id_}, {"detail", connection_->tls()->error()}});
      return finish("tls_failed");
    }
    session_.tls_started();
    after_event();
  });
}

void SubmissionSession::authenticate(const std::string& username, const std::string& password) {
  auto done = completer();
  const smtp::Reply refused = smtp::make_reply(535, "5.7.8", "Authentication credentials invalid");
  if (!environment_->authenticator) return done(refused);
  // The one completion that can outlive this session: the password check runs on another
  // thread (PasswordCheckPool) and answers on a later turn, perhaps after the client left.
  std::weak_ptr<bool> alive = alive_;
  environment_->authenticator->verify(
      username, password, [this, alive, done, refused, username](AuthResult result) {
        if (alive.expired()) return;
        const char* outcome = result == AuthResult::Ok        ? "ok"
                              : result == AuthResult::Invalid ? "failed"
                                                              : "busy";
        log::info("client_auth", {{"session", id_}, {"user", username}, {"result", outcome}});
        if (result == AuthResult::Ok) user_ = username;
        if (result == AuthResult::Ok)
          return done(smtp::make_reply(235, "2.7.0", "Authentication successful"));
        if (result == AuthResult::Busy) {
          environment_->metrics->auth_busy();
          const smtp::Reply busy =
              smtp::make_reply(454, "4.7.0", "Temporary authentication failure, try again later");
          // At once for a client with a clean record; an address that has been failing
          // waits as for its next 535, or a flood would spin on these cheap refusals.
          const auto delay = environment_->auth_failures
                                 ? environment_->auth_failures->current_delay(
                                       client_ip_, std::chrono::steady_clock::now())
                                 : std::chrono::milliseconds::zero();
          if (delay == std::chrono::milliseconds::zero()) return done(busy);
          auth_delay_.start(delay, [done, busy]() { done(busy); });
          return;
        }
        environment_->metrics->auth_failure();
        if (!environment_->auth_failures) return done(refused);
        // Guessing gets slower the more this address fails, on any connection.
        const auto delay = environment_->auth_failures->record_failure(
            client_ip_, std::chrono::steady_clock::now());
        auth_delay_.start(delay, [done, refused]() { done(refused); });
      });
}

}  // namespace portrelay::server
