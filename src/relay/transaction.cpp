#include "portrelay/relay/transaction.hpp"

#include <algorithm>
#include <charconv>

#include "portrelay/base/ascii.hpp"

namespace portrelay::relay {

const char* to_string(Stage stage) {
  switch (stage) {
    case Stage::Greeting:
      return "greeting";
    case Stage::Ehlo:
      return "EHLO";
    case Stage::Mail:
      return "MAIL";
    case Stage::Rcpt:
      return "RCPT";
    case Stage::Data:
      return "DATA";
    case Stage::EndOfData:
      return "end of data";
  }
  return "unknown";
}

const char* to_string(Verdict verdict) {
  switch (verdict) {
    case Verdict::Accept:
      return "accept";
    case Verdict::PermanentRefusal:
      return "permanent";
    case Verdict::TransientRefusal:
      return "transient";
    case Verdict::NextEndpoint:
      return "next endpoint";
    case Verdict::Throttled:
      return "throttled";
  }
  return "unknown";
}

namespace {
bool contains_any(const std::string& text, const std::vector<std::string>& patterns) {
  for (const std::string& pattern : patterns)
    if (text.find(pattern) != std::string::npos) return true;
  return false;
}
}  // namespace

std::optional<PauseKind> throttle_kind(const smtp::Reply& reply,
                                       const config::UpstreamLimits& rules) {
  if (!reply.transient() && !reply.permanent()) return std::nullopt;
  const std::string text = ascii::lower(reply.message());
  if (contains_any(text, rules.quota_patterns)) return PauseKind::Quota;
  if ((reply.enhanced == "5.4.5" || reply.enhanced == "4.4.5") &&
      (text.find("daily") != std::string::npos || text.find("limit") != std::string::npos))
    return PauseKind::Quota;
  if (!reply.transient()) return std::nullopt;
  if (contains_any(text, rules.throttle_patterns)) return PauseKind::Throttle;
  const bool throttle_code = reply.code == 432 || reply.code == 451 || reply.code == 454;
  const bool throttle_status =
      reply.enhanced == "4.7.0" || reply.enhanced == "4.3.2" || reply.enhanced == "4.7.28";
  if (throttle_code && throttle_status) return PauseKind::Throttle;
  return std::nullopt;
}

Verdict classify(Stage stage, const UpstreamResponse& response,
                 const config::UpstreamLimits* rules) {
  const smtp::Reply* reply = reply_of(response);
  if (reply && rules) {
    const auto kind = throttle_kind(*reply, *rules);
    if (kind && (stage == Stage::Mail || stage == Stage::Data || stage == Stage::EndOfData))
      return Verdict::Throttled;
    // At RCPT only a quota reply (Gmail answers its daily limit there): "452 too many
    // recipients" is about this message, not the account.
    if (kind == PauseKind::Quota && stage == Stage::Rcpt) return Verdict::Throttled;
  }
  if (!reply || reply->code == 421) return Verdict::NextEndpoint;
  switch (stage) {
    case Stage::Greeting:
      return reply->code == 220 ? Verdict::Accept : Verdict::NextEndpoint;
    case Stage::Ehlo:
      return reply->success() ? Verdict::Accept : Verdict::NextEndpoint;
    case Stage::Data:
      if (reply->code == 354) return Verdict::Accept;
      return reply->permanent() ? Verdict::PermanentRefusal : Verdict::NextEndpoint;
    case Stage::Rcpt:
      if (reply->transient()) return Verdict::TransientRefusal;
      [[fallthrough]];
    case Stage::Mail:
    case Stage::EndOfData:
      if (reply->success()) return Verdict::Accept;
      if (reply->permanent()) return Verdict::PermanentRefusal;
      return Verdict::NextEndpoint;  // 4xx, or 1xx/3xx where a final answer was due
  }
  return Verdict::NextEndpoint;
}

FailureReason transaction_failure_reason(const UpstreamResponse& response) {
  if (const AttemptFailure* failure = failure_of(response)) {
    switch (failure->reason) {
      case FailureReason::TransactionTimeout:
        return FailureReason::TransactionTimeout;
      case FailureReason::Closed:
      case FailureReason::TransactionReset:
        return FailureReason::TransactionReset;
      default:
        return FailureReason::TransactionProtocol;
    }
  }
  const smtp::Reply& reply = std::get<smtp::Reply>(response);
  return reply.code == 421 ? FailureReason::TransactionReset : FailureReason::TransactionProtocol;
}

bool counts_against_health(const UpstreamResponse& response, bool reused_connection) {
  FailureReason reason = transaction_failure_reason(response);
  if (reused_connection && reason == FailureReason::TransactionReset) return false;  // stale
  if (const smtp::Reply* reply = reply_of(response))
    return reply->code == 421 || reply->unexpected() || reply->success();  // 2xx out of place
  return true;
}

std::string to_string(const Action& action) {
  switch (action.kind) {
    case Action::Kind::Select:
      return "select";
    case Action::Kind::Send:
      return "send " + action.line;
    case Action::Kind::StreamBody:
      return "stream body";
    case Action::Kind::Release:
      return "release";
    case Action::Kind::Discard:
      return "discard";
    case Action::Kind::EndpointFailed:
      return "failed " + action.label + " at " + action.stage + " (" +
             portrelay::to_string(action.failure.reason) + ": " + action.failure.detail + ")" +
             (action.health ? " health" : "");
    case Action::Kind::Failover:
      return "failover " + std::to_string(action.from) + "->" + std::to_string(action.endpoint);
    case Action::Kind::Throttled:
      return "throttled " + action.label + " (" + relay::to_string(action.pause) + ")";
    case Action::Kind::Delivered:
      return "delivered " + action.label;
    case Action::Kind::Reply: {
      std::string text = "reply " + action.reply.summary();
      if (action.outcome)
        text += action.outcome == Outcome::Relayed  ? " [relayed]"
                : action.outcome == Outcome::Failed ? " [failed]"
                                                    : " [deferred]";
      return text;
    }
  }
  return "unknown";
}

smtp::Reply client_reply(const smtp::Reply& upstream, const char* fallback_enhanced) {
  std::string enhanced = upstream.enhanced.empty() ? fallback_enhanced : upstream.enhanced;
  std::string text = upstream.message();
  if (text.empty()) text = "(no text)";
  return smtp::make_reply(upstream.code, enhanced, text);
}

Transaction::Transaction(smtp::PathArgument sender, std::optional<ReadyEndpoint> connection,
                         std::optional<std::uint64_t> message_size)
    : sender_(std::move(sender)), connection_(std::move(connection)), message_size_(message_size) {
  if (const auto* size = sender_.find("SIZE"); size && !message_size_) {
    std::uint64_t declared = 0;
    const auto [end, error] =
        std::from_chars(size->value.data(), size->value.data() + size->value.size(), declared);
    if (error == std::errc() && end == size->value.data() + size->value.size())
      message_size_ = declared;
  }
}

bool Transaction::requires_8bit() const {
  const auto* body = sender_.find("BODY");
  return body && ascii::iequals(body->value, "8BITMIME");
}

std::string Transaction::mail_command() const {
  std::string line = "MAIL FROM:<" + connection_->mail_from.value_or(sender_.address) + ">";
  if (const auto* body = sender_.find("BODY"); body && connection_->eight_bit_mime)
    line += " BODY=" + body->value;
  if (const auto* size = sender_.find("SIZE"); size && connection_->size)
    line += " SIZE=" + size->value;
  return line;
}

bool Transaction::skipped_all_for_size() const {
  return skipped_for_size_ > 0 && skipped_for_size_ == failure_notes_.size() && message_size_;
}

bool Transaction::replaying() const {
  // MAIL sent while the client is not waiting for it, or a recipient the client already
  // heard about: restoring the envelope on a new endpoint.
  if (awaiting_ == Stage::Mail) return pending_ != Pending::Mail;
  if (awaiting_ == Stage::Rcpt) return recipients_on_connection_ < recipients_.size();
  return false;
}

smtp::Reply Transaction::unreachable_reply() const {
  if (skipped_all_for_size())
    return smtp::make_reply(552, "5.3.4",
                            "Message size exceeds what every upstream endpoint accepts (" +
                                std::to_string(*message_size_) + " octets; the largest takes " +
                                std::to_string(largest_skipped_limit_) + ")");
  if (skipped_for_8bit_ > 0 && skipped_for_8bit_ == failure_notes_.size())
    return smtp::make_reply(554, "5.6.3",
                            "No upstream endpoint accepts 8-bit content (8BITMIME), and portrelay "
                            "does not convert messages");
  if (last_upstream_refusal_) return client_reply(*last_upstream_refusal_, "4.4.1");
  if (skipped_limited_ > 0 && skipped_limited_ == failure_notes_.size())
    return smtp::make_reply(451, "4.7.0",
                            "Every upstream is at its sending limit or paused by its provider, "
                            "try again later");
  const bool all_cooling =
      skipped_cooling_down_ > 0 && skipped_cooling_down_ == failure_notes_.size();
  std::string text = all_cooling ? "Every upstream endpoint is cooling down after recent "
                                   "failures, try again later"
                                 : "No upstream endpoint could take the message, try again later";
  if (!failure_notes_.empty()) {
    text += " (";
    for (std::size_t i = 0; i < failure_notes_.size(); ++i)
      text += (i ? "; " : "") + failure_notes_[i];
    text += ")";
  }
  return smtp::make_reply(451, "4.4.1", text);
}

namespace {
// Most steps produce one to three actions: one allocation per step, not one per action.
std::vector<Action> new_batch() {
  std::vector<Action> actions;
  actions.reserve(4);
  return actions;
}
}  // namespace

std::vector<Action> Transaction::mail() {
  pending_ = Pending::Mail;
  auto actions = new_batch();
  advance(actions);
  return actions;
}

std::vector<Action> Transaction::rcpt(const std::string& address) {
  pending_ = Pending::Rcpt;
  pending_recipient_ = address;
  auto actions = new_batch();
  advance(actions);
  return actions;
}

std::vector<Action> Transaction::end_of_data(bool body_stored, std::optional<std::uint64_t> size) {
  pending_ = Pending::EndOfData;
  if (size) message_size_ = size;
  auto actions = new_batch();
  if (!body_stored) {
    finish(actions,
           smtp::make_reply(451, "4.3.0", "Local error storing the message, try again later"),
           Outcome::Deferred);
    return actions;
  }
  advance(actions);
  return actions;
}

void Transaction::send(std::vector<Action>& actions, Stage stage, std::string line) {
  awaiting_ = stage;
  in_flight_ = true;
  Action action;
  action.kind = Action::Kind::Send;
  action.line = std::move(line);
  actions.push_back(std::move(action));
}

// Brings the current connection to where the client's pending request can be sent (a
// connection, MAIL, the recipients accepted so far), then sends it.
void Transaction::advance(std::vector<Action>& actions) {
  if (pending_ == Pending::None || in_flight_ || selecting_) return;
  if (connection_ && !mail_on_connection_ && requires_8bit() && !connection_->eight_bit_mime) {
    // 8-bit content to a server that did not offer 8BITMIME breaks RFC 6152, and portrelay
    // does not convert: this endpoint cannot carry the message. Not its failure, though.
    tried_.insert(connection_->index);
    ++skipped_for_8bit_;
    failure_notes_.push_back(connection_->label + " (no 8BITMIME)");
    actions.push_back({.kind = Action::Kind::Release});
    connection_.reset();
  }
  if (connection_ && message_size_ && connection_->size_limit != 0 &&
      *message_size_ > connection_->size_limit) {
    // Its EHLO SIZE is below this message: it would answer 552. Not its failure either; a
    // MAIL already open on it is cleared by the pool's RSET, and the envelope is replayed
    // on the next endpoint.
    skip_for_size(connection_->index, connection_->label, connection_->size_limit);
    actions.push_back({.kind = Action::Kind::Release});
    connection_.reset();
    mail_on_connection_ = false;
    recipients_on_connection_ = 0;
  }
  if (!connection_) {
    selecting_ = true;
    actions.push_back({.kind = Action::Kind::Select});
    return;
  }
  if (!mail_on_connection_) {
    send(actions, Stage::Mail, mail_command());
  } else if (recipients_on_connection_ < recipients_.size()) {
    send(actions, Stage::Rcpt, "RCPT TO:<" + recipients_[recipients_on_connection_] + ">");
  } else if (pending_ == Pending::Rcpt) {
    send(actions, Stage::Rcpt, "RCPT TO:<" + pending_recipient_ + ">");
  } else if (pending_ == Pending::EndOfData) {
    send(actions, Stage::Data, "DATA");
  }
}

void Transaction::skip_for_size(std::size_t index, const std::string& label, std::uint64_t limit) {
  if (!tried_.insert(index).second) return;
  ++skipped_for_size_;
  largest_skipped_limit_ = std::max(largest_skipped_limit_, limit);
  failure_notes_.push_back(label + " (SIZE " + std::to_string(limit) + ")");
}

std::vector<Action> Transaction::selected(const SelectionReport& report) {
  selecting_ = false;
  auto actions = new_batch();
  for (const auto& failure : report.failures) {
    tried_.insert(failure.index);
    if (failure.failure.reason == FailureReason::CoolingDown) ++skipped_cooling_down_;
    if (failure.failure.reason == FailureReason::Limited) {
      ++skipped_limited_;
      throttled_ = true;  // held back by limits: the message waits for them, not a backoff
    }
    failure_notes_.push_back(failure.label + " " + portrelay::to_string(failure.failure.reason));
  }
  // The move from the endpoint that failed mid-transaction to the first one tried next;
  // moves within one selection are counted by the selector.
  if (failed_from_ && (!report.failures.empty() || report.ready)) {
    Action failover{.kind = Action::Kind::Failover};
    failover.from = *failed_from_;
    failover.endpoint =
        report.failures.empty() ? report.ready->index : report.failures.front().index;
    actions.push_back(std::move(failover));
  }
  failed_from_.reset();
  if (!report.ready) {
    // Nothing reachable: the client's pending request gets the reasons.
    smtp::Reply reply = unreachable_reply();
    if (pending_ == Pending::Rcpt)
      answer(actions, reply);
    else
      finish(actions, reply, skipped_all_for_size() ? Outcome::Failed : Outcome::Deferred);
    return actions;
  }
  connection_ = report.ready;
  mail_on_connection_ = false;
  recipients_on_connection_ = 0;
  advance(actions);
  return actions;
}

void Transaction::endpoint_failed(std::vector<Action>& actions, const UpstreamResponse& response,
                                  std::string stage) {
  const ReadyEndpoint& endpoint = *connection_;
  // A pooled connection may have gone stale (an idle close crossing our command): that
  // says nothing about the endpoint, so it stays eligible and the next selection connects
  // afresh. A fresh connection failing excludes the endpoint from this transaction.
  if (!endpoint.reused) {
    tried_.insert(endpoint.index);
    failed_from_ = endpoint.index;
  }
  Action failed{.kind = Action::Kind::EndpointFailed};
  failed.endpoint = endpoint.index;
  failed.label = endpoint.label;
  failed.stage = std::move(stage);
  failed.health = counts_against_health(response, endpoint.reused);
  failed.failure.reason = transaction_failure_reason(response);
  if (const AttemptFailure* failure = failure_of(response)) {
    failed.failure.detail = failure->detail;
    failure_notes_.push_back(endpoint.label + " (" + portrelay::to_string(failure->reason) + ": " +
                             failure->detail + ")");
  } else {
    const smtp::Reply& reply = std::get<smtp::Reply>(response);
    failed.failure.detail = reply.summary();
    failed.refusal = reply.transient() && reply.code != 421;
    failure_notes_.push_back(endpoint.label + " (" + reply.summary() + ")");
    // Only a 4xx may become the client's answer when no endpoint is left: a 2xx/3xx seen
    // out of place (250 to DATA) would tell the client the message was taken.
    if (reply.transient() && reply.code != 421) last_upstream_refusal_ = reply;
  }
  actions.push_back({.kind = Action::Kind::Discard});
  actions.push_back(std::move(failed));
  connection_.reset();
  mail_on_connection_ = false;
  recipients_on_connection_ = 0;
}

// The upstream asked us to slow down (or is out of quota): the selector pauses all of it,
// so the next selection goes to another upstream, never to the same account's other port.
// The connection is closed rather than pooled, and the endpoint is not blamed (no health).
void Transaction::throttled(std::vector<Action>& actions, const smtp::Reply& reply, Stage stage) {
  const ReadyEndpoint& endpoint = *connection_;
  const PauseKind kind = throttle_kind(reply, *endpoint.rules).value_or(PauseKind::Throttle);
  throttled_ = true;
  tried_.insert(endpoint.index);
  failed_from_ = endpoint.index;
  failure_notes_.push_back(endpoint.label + " (" + reply.summary() + ")");
  // Never a 5xx to the client or a bounce for it: a quota refusal is temporary for us.
  last_upstream_refusal_ =
      reply.transient()
          ? reply
          : smtp::make_reply(451, "4.7.0",
                             "Upstream " + endpoint.label + " is out of quota: " + reply.message());
  Action action{.kind = Action::Kind::Throttled};
  action.endpoint = endpoint.index;
  action.label = endpoint.label;
  action.stage = to_string(stage);
  action.pause = kind;
  action.reply = reply;
  actions.push_back({.kind = Action::Kind::Discard});
  actions.push_back(std::move(action));
  connection_.reset();
  mail_on_connection_ = false;
  recipients_on_connection_ = 0;
}

void Transaction::answer(std::vector<Action>& actions, smtp::Reply reply) {
  pending_ = Pending::None;
  Action action{.kind = Action::Kind::Reply};
  action.reply = std::move(reply);
  actions.push_back(std::move(action));
}

void Transaction::finish(std::vector<Action>& actions, smtp::Reply reply, Outcome outcome) {
  // Between transactions a session holds no upstream: an idle client costs nothing there,
  // and the pool sends RSET before anyone reuses a connection with MAIL/RCPT still open.
  Action action{.kind = Action::Kind::Reply};
  if (connection_) {
    action.endpoint = connection_->index;
    action.label = connection_->label;
    actions.push_back({.kind = Action::Kind::Release});
  }
  connection_.reset();
  finished_ = true;
  pending_ = Pending::None;
  action.reply = std::move(reply);
  action.outcome = outcome;
  actions.push_back(std::move(action));
}

std::vector<Action> Transaction::response(const UpstreamResponse& response) {
  auto actions = new_batch();
  if (!in_flight_ || !connection_) return actions;  // nothing was asked: ignore
  in_flight_ = false;
  const Stage stage = awaiting_;
  const Verdict verdict = classify(stage, response, connection_->rules);
  if (verdict == Verdict::Throttled) {
    throttled(actions, std::get<smtp::Reply>(response), stage);
    advance(actions);
    return actions;
  }
  if (replaying()) {
    if (verdict != Verdict::Accept) {
      endpoint_failed(actions, response, std::string(to_string(stage)) + " (replay)");
    } else if (stage == Stage::Mail) {
      mail_on_connection_ = true;
    } else {
      ++recipients_on_connection_;
    }
    advance(actions);
    return actions;
  }
  if (verdict == Verdict::NextEndpoint) {
    endpoint_failed(actions, response, to_string(stage));
    advance(actions);
    return actions;
  }
  const smtp::Reply& reply = std::get<smtp::Reply>(response);
  switch (stage) {
    case Stage::Mail:
      if (verdict == Verdict::Accept) mail_on_connection_ = true;
      answer(actions, client_reply(reply, verdict == Verdict::Accept ? "2.1.0" : "5.1.0"));
      break;
    case Stage::Rcpt:
      outcomes_.push_back({pending_recipient_, verdict, reply, connection_->label});
      if (verdict == Verdict::Accept) {
        recipients_.push_back(pending_recipient_);
        ++recipients_on_connection_;
      }
      answer(actions, client_reply(reply, verdict == Verdict::Accept ? "2.1.5" : "5.1.1"));
      break;
    case Stage::Data:
      if (verdict == Verdict::Accept) {
        awaiting_ = Stage::EndOfData;
        in_flight_ = true;
        actions.push_back({.kind = Action::Kind::StreamBody});
      } else {
        finish(actions, client_reply(reply, "5.0.0"), Outcome::Failed);
      }
      break;
    case Stage::EndOfData:
      if (verdict == Verdict::Accept) {
        smtp::Reply accepted = client_reply(reply, "2.0.0");
        accepted.lines = {accepted.enhanced + " Ok: relayed via " + connection_->label + ": " +
                          reply.message()};
        Action delivered{.kind = Action::Kind::Delivered};
        delivered.endpoint = connection_->index;
        delivered.label = connection_->label;
        delivered.recipients = recipients_on_connection_;
        actions.push_back(std::move(delivered));
        finish(actions, std::move(accepted), Outcome::Relayed);
      } else {
        finish(actions, client_reply(reply, "5.0.0"), Outcome::Failed);
      }
      break;
    case Stage::Greeting:
    case Stage::Ehlo:
      break;  // the handshake is ClientHandshake's; never in flight here
  }
  return actions;
}

}  // namespace portrelay::relay
