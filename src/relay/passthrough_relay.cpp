#include "portrelay/relay/passthrough_relay.hpp"

#include <utility>

#include "portrelay/base/log.hpp"

namespace portrelay::relay {

PassthroughRelay::PassthroughRelay(net::Loop& loop, std::shared_ptr<UpstreamSelector> selector,
                                   metrics::Metrics& metrics, std::string session_id, Role role)
    : loop_(loop),
      selector_(std::move(selector)),
      metrics_(metrics),
      session_id_(std::move(session_id)),
      role_(role),
      body_(std::make_unique<MessageBody>()) {}

std::unique_ptr<MessageBody> PassthroughRelay::take_body() {
  return std::exchange(body_, std::make_unique<MessageBody>());
}

PassthroughRelay::~PassthroughRelay() { release_upstream(); }

const config::Endpoint& PassthroughRelay::endpoint(std::size_t index) const {
  return selector_->endpoints().at(index)->endpoint;
}

void PassthroughRelay::release_upstream() {
  // The pool checks every connection with RSET before reuse, so a transaction abandoned
  // upstream is cleared there; a connection with a command in flight is closed instead.
  if (upstream_) selector_->release(std::move(upstream_));
}

std::optional<ReadyEndpoint> PassthroughRelay::held_connection() const {
  if (!upstream_) return std::nullopt;
  const auto& capabilities = upstream_->capabilities();
  return ReadyEndpoint{upstream_->endpoint().index, upstream_->endpoint().label(),
                       capabilities.eight_bit_mime, capabilities.size, upstream_->reused()};
}

void PassthroughRelay::sender(const smtp::PathArgument& sender, ReplyCallback callback) {
  // A connection held since the last message may have been closed while idle.
  if (upstream_ && !upstream_->usable()) loop_.defer_delete(std::move(upstream_));
  message_id_ = role_ == Role::SpoolDelivery ? session_id_
                                             : session_id_ + "." + std::to_string(++message_count_);
  body_->clear();
  // From MAIL for a message that fails before its data; commit() restarts it at the dot.
  commit_started_ = std::chrono::steady_clock::now();
  transaction_.emplace(sender, held_connection());
  reply_ = std::move(callback);
  run(transaction_->mail());
}

void PassthroughRelay::recipient(const smtp::PathArgument& recipient, ReplyCallback callback) {
  reply_ = std::move(callback);
  run(transaction_->rcpt(recipient.address));
}

void PassthroughRelay::commit(ReplyCallback callback) {
  reply_ = std::move(callback);
  commit_started_ = std::chrono::steady_clock::now();
  if (body_->failed())
    log::error("body_store_failed", {{"session", session_id_}, {"detail", body_->error()}});
  run(transaction_->end_of_data(!body_->failed()));
}

void PassthroughRelay::reset() {
  attempt_.reset();
  reply_ = nullptr;
  transaction_.reset();
  body_->clear();
  release_upstream();
}

void PassthroughRelay::select() {
  attempt_ = selector_->select(transaction_->tried(), [this](Selection selection) {
    loop_.defer_delete(std::move(attempt_));  // we are inside its callback
    SelectionReport report;
    for (const auto& failure : selection.failures)
      report.failures.push_back(
          {failure.endpoint_index, endpoint(failure.endpoint_index).label(), failure.failure});
    if (selection.connection) {
      upstream_ = std::move(selection.connection);
      report.ready = held_connection();
      log::info("upstream_ready",
                {{"session", session_id_},
                 {"endpoint", upstream_->endpoint().label()},
                 {"tls", upstream_->tls_version().empty() ? "none" : upstream_->tls_version()}});
    }
    run(transaction_->selected(report));
  });
}

void PassthroughRelay::on_response(const UpstreamResponse& response) {
  run(transaction_->response(response));
}

void PassthroughRelay::run(std::vector<Action> actions) {
  for (auto& action : actions) {
    switch (action.kind) {
      case Action::Kind::Select:
        select();
        break;
      case Action::Kind::Send:
        upstream_->command(action.line,
                           [this](const UpstreamResponse& response) { on_response(response); });
        break;
      case Action::Kind::StreamBody:
        upstream_->send_body(*body_,
                             [this](const UpstreamResponse& response) { on_response(response); });
        break;
      case Action::Kind::Release:
        release_upstream();
        break;
      case Action::Kind::Discard:
        // Usually we are inside the connection's own callback.
        loop_.defer_delete(std::move(upstream_));
        break;
      case Action::Kind::EndpointFailed:
        report_failure(action);
        break;
      case Action::Kind::Failover:
        metrics_.failover(endpoint(action.from), endpoint(action.endpoint));
        break;
      case Action::Kind::Reply: {
        if (action.outcome) report_message(action);
        // Last action of the batch (Transaction's contract): the client's session may
        // act on the answer at once.
        auto callback = std::move(reply_);
        reply_ = nullptr;
        if (callback) callback(action.reply);
        return;
      }
    }
  }
}

void PassthroughRelay::report_failure(const Action& failed) {
  log::warn("upstream_transaction_failed", {{"session", session_id_},
                                            {"message", message_id_},
                                            {"endpoint", failed.label},
                                            {"stage", failed.stage},
                                            {"detail", failed.failure.detail}});
  if (failed.health) selector_->record_transaction_failure(failed.endpoint, failed.failure);
}

void PassthroughRelay::report_message(const Action& reply) {
  auto result = *reply.outcome == Outcome::Relayed  ? metrics::MessageResult::Relayed
                : *reply.outcome == Outcome::Failed ? metrics::MessageResult::Failed
                                                    : metrics::MessageResult::Deferred;
  const std::string endpoint = reply.label.empty() ? "none" : reply.label;
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - commit_started_).count();
  const auto level =
      result == metrics::MessageResult::Relayed ? log::Level::Info : log::Level::Warn;
  if (role_ == Role::SpoolDelivery) {
    log::write(level, "delivery_attempt",
               {{"queue_id", message_id_},
                {"result", metrics::to_string(result)},
                {"recipients", std::to_string(transaction_->recipients().size())},
                {"endpoint", endpoint},
                {"reply", reply.reply.summary()},
                {"ms", std::to_string(static_cast<long>(seconds * 1000))}});
    return;
  }
  // The spool takes over a deferred message and reports it (queued, or 451 after all).
  if (role_ == Role::SpoolFallback && result == metrics::MessageResult::Deferred) return;
  metrics_.message(result);
  if (result == metrics::MessageResult::Relayed) metrics_.message_relayed(seconds, body_->size());
  // Who the message was for, on the same line (Postfix logs to=<...> per recipient): `to`
  // lists the recipients the upstream accepted, whose fate is `result` and `reply`;
  // `refused` each one it refused at RCPT with its answer. `from` is "" for a null sender.
  std::string to;
  std::string refused;
  for (const RecipientOutcome& outcome : transaction_->recipient_outcomes()) {
    if (outcome.verdict == Verdict::Accept) {
      if (!to.empty()) to += ',';
      to += outcome.address;
    } else {
      if (!refused.empty()) refused += "; ";
      refused += outcome.address + ": " + outcome.reply.summary();
    }
  }
  const std::string recipients = std::to_string(transaction_->recipients().size());
  const std::string size = std::to_string(body_->size());
  const std::string ms = std::to_string(static_cast<long>(seconds * 1000));
  const std::string summary = reply.reply.summary();
  if (refused.empty()) {
    log::write(level, "message",
               {{"session", session_id_},
                {"message", message_id_},
                {"result", metrics::to_string(result)},
                {"from", transaction_->sender().address},
                {"to", to},
                {"recipients", recipients},
                {"size", size},
                {"endpoint", endpoint},
                {"reply", summary},
                {"ms", ms}});
  } else {
    log::write(level, "message",
               {{"session", session_id_},
                {"message", message_id_},
                {"result", metrics::to_string(result)},
                {"from", transaction_->sender().address},
                {"to", to},
                {"refused", refused},
                {"recipients", recipients},
                {"size", size},
                {"endpoint", endpoint},
                {"reply", summary},
                {"ms", ms}});
  }
}

}  // namespace portrelay::relay
