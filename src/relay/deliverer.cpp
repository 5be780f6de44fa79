#include "portrelay/relay/deliverer.hpp"

#include <algorithm>
#include <utility>

#include "portrelay/base/log.hpp"

namespace portrelay::relay {
namespace {

DeliveryOutcome outcome_of(Outcome outcome) {
  switch (outcome) {
    case Outcome::Relayed:
      return DeliveryOutcome::Delivered;
    case Outcome::Failed:
      return DeliveryOutcome::Refused;
    case Outcome::Deferred:
      return DeliveryOutcome::Deferred;
  }
  return DeliveryOutcome::Deferred;
}

// A refusal that is not an upstream's final word waits.
DeliveryOutcome refusal_outcome(const smtp::Reply& reply) {
  return reply.permanent() ? DeliveryOutcome::Refused : DeliveryOutcome::Deferred;
}

}  // namespace

const char* to_string(DeliveryOutcome outcome) {
  switch (outcome) {
    case DeliveryOutcome::Delivered:
      return "delivered";
    case DeliveryOutcome::Refused:
      return "refused";
    case DeliveryOutcome::Deferred:
      return "deferred";
    case DeliveryOutcome::Throttled:
      return "throttled";
  }
  return "unknown";
}

Deliverer::Deliverer(net::Loop& loop, std::shared_ptr<UpstreamSelector> selector,
                     metrics::Metrics& metrics, std::string log_id)
    : loop_(loop), selector_(std::move(selector)), metrics_(metrics), log_id_(std::move(log_id)) {}

Deliverer::~Deliverer() { release_upstream(); }

const config::Endpoint& Deliverer::endpoint(std::size_t index) const {
  return selector_->endpoints().at(index)->endpoint;
}

void Deliverer::release_upstream() {
  // The pool checks every connection with RSET before reuse, so a transaction abandoned
  // upstream is cleared there; a connection with a command in flight is closed instead.
  if (upstream_) selector_->release(std::move(upstream_));
}

std::optional<ReadyEndpoint> Deliverer::held_connection(const smtp::PathArgument& sender) const {
  if (!upstream_) return std::nullopt;
  const auto& capabilities = upstream_->capabilities();
  const std::size_t index = upstream_->endpoint().index;
  ReadyEndpoint ready{index,
                      upstream_->endpoint().label(),
                      capabilities.eight_bit_mime,
                      capabilities.size,
                      upstream_->reused(),
                      capabilities.size_limit,
                      selector_->limits_of(index)};
  // The identity of the configuration this deliverer runs under (its selector's), not of
  // the one a pooled connection was made with.
  const EndpointRuntime& runtime = *selector_->endpoints().at(ready.index);
  if (runtime.rewriter) {
    std::string mail_from = runtime.rewriter->upstream_sender(runtime.identity, sender.address);
    if (mail_from != sender.address) ready.mail_from = std::move(mail_from);
  }
  return ready;
}

std::optional<BodyStreamer::Rewrite> Deliverer::upstream_rewrite() const {
  const EndpointRuntime& runtime = *selector_->endpoints().at(upstream_->endpoint().index);
  if (!runtime.rewriter) return std::nullopt;  // the common case: nothing to look at
  smtp::HeaderRewrite plan =
      runtime.rewriter->upstream_plan(runtime.identity, transaction_->sender().address);
  if (plan.empty()) return std::nullopt;
  return BodyStreamer::Rewrite{
      std::move(plan), [&metrics = metrics_, log_id = log_id_,
                        label = upstream_->endpoint().label()](const auto& result) {
        if (!result) {
          log::warn("header_not_rewritten", {{"session", log_id},
                                             {"endpoint", label},
                                             {"detail", "header section longer than 256 KiB"}});
          return;
        }
        if (!result->from_replaced) return;
        metrics.from_rewritten("upstream");
        log::info(
            "from_rewritten",
            {{"session", log_id}, {"endpoint", label}, {"original_from", result->original_from}});
        if (result->dkim_signature_broken) {
          metrics.dkim_signature_broken("upstream");
          log::warn("dkim_signature_broken",
                    {{"session", log_id},
                     {"endpoint", label},
                     {"original_from", result->original_from},
                     {"detail", "From is signed by a DKIM-Signature (h=) and was rewritten"}});
        }
      }};
}

std::string Deliverer::held_label() const {
  return transaction_ && transaction_->connection() ? transaction_->connection()->label : "";
}

bool Deliverer::on_route(std::size_t endpoint_index) const {
  return route_ != nullptr && std::find(route_->endpoints.begin(), route_->endpoints.end(),
                                        endpoint_index) != route_->endpoints.end();
}

void Deliverer::open(const smtp::PathArgument& sender, std::string message_id, Answer answer,
                     std::string_view route) {
  route_ = &selector_->route(route);
  // A connection held since the last message may have been closed while idle.
  if (upstream_ && !upstream_->usable()) loop_.defer_delete(std::move(upstream_));
  if (upstream_ && !on_route(upstream_->endpoint().index)) release_upstream();
  message_id_ = std::move(message_id);
  body_ = nullptr;
  transaction_.emplace(sender, held_connection(sender), whole_size_);
  answer_ = std::move(answer);
  run(transaction_->mail());
}

void Deliverer::add_recipient(const std::string& address, Answer answer) {
  answer_ = std::move(answer);
  run(transaction_->rcpt(address));
}

void Deliverer::send(const MessageBody& body, Answer answer) {
  answer_ = std::move(answer);
  body_ = &body;
  data_ended_ = std::chrono::steady_clock::now();
  if (body.failed())
    log::error("body_store_failed", {{"session", log_id_}, {"detail", body.error()}});
  run(transaction_->end_of_data(!body.failed(), body.size()));
}

void Deliverer::reset() {
  attempt_.reset();
  whole_size_.reset();
  answer_ = nullptr;
  whole_.reset();
  transaction_.reset();
  body_ = nullptr;
  release_upstream();
}

void Deliverer::select() {
  // Endpoints whose EHLO SIZE is known to be below the message are not even tried.
  if (const auto size = transaction_->message_size()) {
    for (std::size_t i = 0; i < selector_->endpoints().size(); ++i)
      if (const auto limit = selector_->size_limit(i); limit && *limit != 0 && *size > *limit)
        transaction_->skip_for_size(i, endpoint(i).label(), *limit);
  }
  attempt_ = selector_->select(*route_, transaction_->tried(), [this](Selection selection) {
    loop_.defer_delete(std::move(attempt_));  // we are inside its callback
    SelectionReport report;
    for (const auto& failure : selection.failures)
      report.failures.push_back(
          {failure.endpoint_index, endpoint(failure.endpoint_index).label(), failure.failure});
    if (selection.connection) {
      upstream_ = std::move(selection.connection);
      report.ready = held_connection(transaction_->sender());
      // A connection is announced once, by the first message on it (a probe's connection
      // too); after that the message's own line names the endpoint it went to.
      if (!upstream_->first_announcement()) return run(transaction_->selected(report));
      const std::string tls = upstream_->tls_version().empty() ? "none" : upstream_->tls_version();
      // Which certificate the upstream asked for and got ([[upstream]] tls_client_cert).
      if (const std::string& certificate = upstream_->trace().client_certificate;
          !certificate.empty())
        log::info("upstream_ready", {{"session", log_id_},
                                     {"endpoint", upstream_->endpoint().label()},
                                     {"tls", tls},
                                     {"client_cert", certificate}});
      else
        log::info(
            "upstream_ready",
            {{"session", log_id_}, {"endpoint", upstream_->endpoint().label()}, {"tls", tls}});
    }
    run(transaction_->selected(report));
  });
}

void Deliverer::on_response(const UpstreamResponse& response) {
  run(transaction_->response(response));
}

void Deliverer::run(std::vector<Action> actions) {
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
        upstream_->send_body(*body_, upstream_rewrite(),
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
      case Action::Kind::Throttled:
        log::warn("upstream_throttled", {{"session", log_id_},
                                         {"message", message_id_},
                                         {"endpoint", action.label},
                                         {"stage", action.stage},
                                         {"kind", relay::to_string(action.pause)},
                                         {"reply", action.reply.summary()}});
        selector_->record_throttle(action.endpoint, action.pause, action.reply);
        break;
      case Action::Kind::Delivered:
        selector_->record_delivered(action.endpoint, action.recipients);
        break;
      case Action::Kind::Reply: {
        // Last action of the batch (Transaction's contract): the answer's receiver may
        // act on it at once, even reset() us.
        auto answer = std::move(answer_);
        answer_ = nullptr;
        if (!answer) return;
        if (action.outcome) {
          const DeliveryReport report = ended_report(std::move(action));
          answer(report.reply, &report);
        } else {
          answer(action.reply, nullptr);
        }
        return;
      }
    }
  }
}

void Deliverer::report_failure(const Action& failed) {
  log::warn("upstream_transaction_failed", {{"session", log_id_},
                                            {"message", message_id_},
                                            {"endpoint", failed.label},
                                            {"stage", failed.stage},
                                            {"detail", failed.failure.detail}});
  if (failed.health) selector_->record_transaction_failure(failed.endpoint, failed.failure);
  if (failed.refusal) selector_->record_refusal(failed.endpoint);
}

DeliveryReport Deliverer::ended_report(Action&& reply) const {
  DeliveryReport report;
  report.outcome = outcome_of(*reply.outcome);
  // The message waits for the upstream's gate, not for a retry backoff of its own.
  if (report.outcome == DeliveryOutcome::Deferred && transaction_->throttled())
    report.outcome = DeliveryOutcome::Throttled;
  report.reply = std::move(reply.reply);
  report.endpoint = std::move(reply.label);
  report.route = route_ != nullptr ? route_->name : std::string(config::kDefaultRouteName);
  if (body_) {
    report.size = body_->size();
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - data_ended_).count();
  }
  report.recipients.reserve(transaction_->recipient_outcomes().size());
  for (const RecipientOutcome& outcome : transaction_->recipient_outcomes()) {
    RecipientReport recipient;
    recipient.address = outcome.address;
    if (outcome.verdict == Verdict::Accept) {
      // The final dot (or its absence) decides for every recipient the upstream took.
      recipient.rcpt_accepted = true;
      recipient.outcome = report.outcome;
      recipient.reply = report.reply;
      recipient.endpoint = report.endpoint;
    } else {
      recipient.outcome = outcome.verdict == Verdict::PermanentRefusal ? DeliveryOutcome::Refused
                                                                       : DeliveryOutcome::Deferred;
      recipient.reply = client_reply(outcome.reply, "5.1.1");
      recipient.endpoint = outcome.endpoint;
    }
    report.recipients.push_back(std::move(recipient));
  }
  return report;
}

// ---- deliver(): the whole message, for the spool.

void Deliverer::deliver(const smtp::PathArgument& sender,
                        const std::vector<std::string>& recipients, const MessageBody& body,
                        std::string message_id, Done done, std::string_view route) {
  reset();
  whole_size_ = body.size();
  whole_.emplace();
  whole_->reports.resize(recipients.size());
  for (std::size_t i = 0; i < recipients.size(); ++i) whole_->reports[i].address = recipients[i];
  whole_->done = std::move(done);
  open(
      sender, std::move(message_id),
      [this, &body](const smtp::Reply& reply, const DeliveryReport* ended) {
        if (ended) {  // no endpoint could take the transaction
          deliver_finish(*ended, Decides::Everyone);
          return;
        }
        if (!reply.success()) {  // an endpoint refused the sender: every recipient shares it
          DeliveryReport report;
          report.outcome = refusal_outcome(reply);
          report.reply = reply;
          report.endpoint = held_label();
          deliver_finish(std::move(report), Decides::Everyone);
          return;
        }
        body_ = &body;  // kept for deliver_next_recipient's send()
        deliver_next_recipient();
      },
      route);
}

void Deliverer::deliver_next_recipient() {
  Whole& whole = *whole_;
  if (whole.next == whole.reports.size()) {
    if (whole.accepted == 0) {
      // Nothing to send the body for. The message's outcome: final only if every
      // recipient's refusal was.
      DeliveryReport report;
      report.outcome = DeliveryOutcome::Refused;
      for (const RecipientReport& recipient : whole.reports)
        if (recipient.outcome != DeliveryOutcome::Refused) report.outcome = recipient.outcome;
      if (!whole.reports.empty()) {
        report.reply = whole.reports.back().reply;
        report.endpoint = whole.reports.back().endpoint;
      }
      deliver_finish(std::move(report), Decides::Nobody);
      return;
    }
    send(*body_, [this](const smtp::Reply& reply, const DeliveryReport* ended) {
      DeliveryReport report;
      if (ended) {
        report = *ended;
      } else {  // end of data always ends the transaction; never seen
        report.outcome = DeliveryOutcome::Deferred;
        report.reply = reply;
      }
      deliver_finish(std::move(report), Decides::Accepted);
    });
    return;
  }
  const std::size_t index = whole.next++;
  add_recipient(whole.reports[index].address,
                [this, index](const smtp::Reply& reply, const DeliveryReport* ended) {
                  RecipientReport& recipient = whole_->reports[index];
                  recipient.reply = reply;
                  recipient.endpoint = ended ? ended->endpoint : held_label();
                  if (reply.success()) {
                    recipient.rcpt_accepted = true;
                    ++whole_->accepted;
                  } else {
                    recipient.outcome = refusal_outcome(reply);
                  }
                  deliver_next_recipient();
                });
}

void Deliverer::deliver_finish(DeliveryReport report, Decides decides) {
  // The recipients answered so far, each given the message's outcome where it decides.
  report.recipients = std::move(whole_->reports);
  report.route = route_ != nullptr ? route_->name : std::string(config::kDefaultRouteName);
  for (RecipientReport& recipient : report.recipients) {
    if (decides == Decides::Nobody || (decides == Decides::Accepted && !recipient.rcpt_accepted))
      continue;
    recipient.outcome = report.outcome;
    recipient.reply = report.reply;
    recipient.endpoint = report.endpoint;
  }
  auto done = std::move(whole_->done);
  reset();  // releases the connection; the transaction is over either way
  if (done) done(std::move(report));
}

}  // namespace portrelay::relay
