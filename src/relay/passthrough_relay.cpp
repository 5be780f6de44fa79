#include "portrelay/relay/passthrough_relay.hpp"

#include <algorithm>
#include <cctype>

#include "portrelay/log.hpp"

namespace portrelay::relay {
namespace {}  // namespace

smtp::Reply client_reply(const smtp::Reply& upstream, const char* fallback_enhanced) {
  std::string enhanced = upstream.enhanced.empty() ? fallback_enhanced : upstream.enhanced;
  std::string text = upstream.message();
  if (text.empty()) text = "(no text)";
  return smtp::make_reply(upstream.code, enhanced, text);
}

PassthroughRelay::PassthroughRelay(UpstreamSelector& selector, metrics::Metrics& metrics,
                                   std::string session_id)
    : selector_(selector), metrics_(metrics), session_id_(std::move(session_id)) {}

PassthroughRelay::~PassthroughRelay() {
  *alive_ = false;
  release_upstream();
}

void PassthroughRelay::release_upstream() {
  // The pool checks every connection with RSET before reuse, so an abandoned
  // transaction upstream is cleared there.
  transaction_open_ = false;
  if (upstream_) selector_.release(std::move(upstream_));
}

std::string PassthroughRelay::mail_command() const {
  std::string line = "MAIL FROM:<" + sender_.address + ">";
  const auto& capabilities = upstream_->capabilities();
  if (const auto* body = sender_.find("BODY"); body && capabilities.eight_bit_mime)
    line += " BODY=" + body->value;
  if (const auto* size = sender_.find("SIZE"); size && capabilities.size)
    line += " SIZE=" + size->value;
  return line;
}

bool PassthroughRelay::failover_worthy(const UpstreamResponse& response) const {
  // The connection broke, the server is closing (421), it asked us to try later, or it
  // answered out of protocol (1xx/3xx where a final reply was due): the next endpoint may
  // do better. A 5xx is the upstream's verdict on this message.
  return response.connection_failed() || response.reply->transient() ||
         response.reply->unexpected();
}

void PassthroughRelay::endpoint_failed(const UpstreamResponse& response, const char* stage) {
  // No upstream: an earlier failure already gave up on the endpoint (e.g. RCPT or DATA after
  // the envelope could not be moved anywhere). Nothing new to record.
  if (!upstream_) return;
  const config::Endpoint& endpoint = upstream_->endpoint();
  // A pooled connection may have gone stale (idle close crossing our command, 421 idle
  // timeout): that says nothing about the endpoint, so it stays eligible and the next
  // selection connects afresh. A fresh connection failing excludes the endpoint.
  if (!upstream_->reused()) {
    tried_.insert(endpoint.index);
    failed_from_ = endpoint;
  }
  std::string what;
  if (response.connection_failed()) {
    what = std::string(to_string(response.failure.reason)) + ": " + response.failure.detail;
  } else {
    what = response.reply->summary();
    // Only a 4xx may become the client's answer when no endpoint is left: a 2xx/3xx
    // seen out of place (250 to DATA) would tell the client the message was taken.
    if (response.reply->transient() && response.reply->code != 421)
      last_upstream_refusal_ = *response.reply;
  }
  failure_notes_.push_back(endpoint.label() + " (" + what + ")");
  log::warn("upstream_transaction_failed", {{"session", session_id_},
                                            {"message", message_id_},
                                            {"endpoint", endpoint.label()},
                                            {"stage", stage},
                                            {"detail", what}});
  // We are inside the connection's own callback: it is destroyed once selection resumes.
  retired_ = std::move(upstream_);
}

bool PassthroughRelay::sender_requires_8bit() const {
  const auto* body = sender_.find("BODY");
  return body && body->value.size() == 8 &&
         std::equal(body->value.begin(), body->value.end(), "8BITMIME", [](char a, char b) {
           return std::toupper(static_cast<unsigned char>(a)) == b;
         });
}

smtp::Reply PassthroughRelay::unreachable_reply() const {
  if (skipped_for_8bit_ > 0 && skipped_for_8bit_ == failure_notes_.size())
    return smtp::make_reply(554, "5.6.3",
                            "No upstream endpoint accepts 8-bit content (8BITMIME), and portrelay "
                            "does not convert messages");
  if (last_upstream_refusal_) return client_reply(*last_upstream_refusal_, "4.4.1");
  std::string text = "No upstream endpoint could take the message, try again later";
  if (!failure_notes_.empty()) {
    text += " (";
    for (std::size_t i = 0; i < failure_notes_.size(); ++i)
      text += (i ? "; " : "") + failure_notes_[i];
    text += ")";
  }
  return smtp::make_reply(451, "4.4.1", text);
}

void PassthroughRelay::with_upstream(Done done) {
  if (upstream_ && upstream_->usable()) return done(true);
  if (upstream_) retired_ = std::move(upstream_);
  attempt_ = selector_.select(tried_, [this, done = std::move(done)](Selection selection) {
    attempt_.reset();
    retired_.reset();
    for (const auto& failure : selection.failures) {
      tried_.insert(failure.endpoint_index);
      const auto& endpoint = selector_.endpoints().at(failure.endpoint_index).endpoint;
      failure_notes_.push_back(endpoint.label() + " " + to_string(failure.failure.reason));
    }
    // The move from the endpoint that failed mid-transaction to the first one tried next;
    // moves within the selection are counted by the selector.
    if (failed_from_ && !selection.failures.empty()) {
      const auto first = selection.failures.front().endpoint_index;
      metrics_.failover(*failed_from_, selector_.endpoints().at(first).endpoint);
    } else if (failed_from_ && selection.connection) {
      metrics_.failover(*failed_from_, selection.connection->endpoint());
    }
    failed_from_.reset();
    if (!selection.connection) return done(false);
    upstream_ = std::move(selection.connection);
    log::info("upstream_ready",
              {{"session", session_id_},
               {"endpoint", upstream_->endpoint().label()},
               {"tls", upstream_->tls_version().empty() ? "none" : upstream_->tls_version()}});
    done(true);
  });
}

void PassthroughRelay::mail(const smtp::PathArgument& sender, ReplyCallback callback) {
  sender_ = sender;
  recipients_.clear();
  body_.clear();
  tried_.clear();
  failure_notes_.clear();
  last_upstream_refusal_.reset();
  failed_from_.reset();
  skipped_for_8bit_ = 0;
  message_id_ = session_id_ + "." + std::to_string(++message_count_);
  start_mail(std::move(callback));
}

void PassthroughRelay::start_mail(ReplyCallback callback) {
  with_upstream([this, callback = std::move(callback)](bool ok) {
    if (!ok) {
      metrics_.message(metrics::MessageResult::Deferred);
      auto reply = unreachable_reply();
      log::warn("message_deferred", {{"session", session_id_},
                                     {"message", message_id_},
                                     {"stage", "MAIL"},
                                     {"reply", reply.summary()}});
      return callback(reply);
    }
    if (sender_requires_8bit() && !upstream_->capabilities().eight_bit_mime) {
      // Sending 8-bit content to a server that did not offer 8BITMIME breaks RFC 6152,
      // and portrelay does not convert: this endpoint cannot carry the message.
      const auto& endpoint = upstream_->endpoint();
      tried_.insert(endpoint.index);
      ++skipped_for_8bit_;
      failure_notes_.push_back(endpoint.label() + " (no 8BITMIME)");
      release_upstream();
      return start_mail(callback);
    }
    upstream_->command(mail_command(), [this, callback](const UpstreamResponse& response) {
      if (failover_worthy(response)) {
        endpoint_failed(response, "MAIL");
        return start_mail(callback);
      }
      if (response.reply->success()) transaction_open_ = true;
      callback(client_reply(*response.reply, response.reply->success() ? "2.1.0" : "5.1.0"));
    });
  });
}

void PassthroughRelay::rcpt(const smtp::PathArgument& recipient, ReplyCallback callback) {
  std::string address = recipient.address;
  auto on_response = [this, address, callback](const UpstreamResponse& response) {
    if (response.connection_failed() || response.reply->code == 421 ||
        response.reply->unexpected()) {
      // The endpoint died under us: move the envelope to the next one, then retry.
      endpoint_failed(response, "RCPT");
      return replay_envelope([this, address, callback](bool ok) {
        if (!ok) return callback(unreachable_reply());
        smtp::PathArgument retry;
        retry.address = address;
        rcpt(retry, callback);
      });
    }
    // Any other answer is about this recipient and goes to the client as it is.
    if (response.reply->success()) recipients_.push_back(address);
    callback(client_reply(*response.reply, response.reply->success() ? "2.1.5" : "5.1.1"));
  };
  if (!upstream_) {
    return on_response(UpstreamResponse{std::nullopt, {FailureReason::Closed, "no upstream"}});
  }
  upstream_->command("RCPT TO:<" + address + ">", on_response);
}

void PassthroughRelay::replay_envelope(Done done) {
  with_upstream([this, done = std::move(done)](bool ok) {
    if (!ok) return done(false);
    upstream_->command(mail_command(), [this, done](const UpstreamResponse& response) {
      if (response.connection_failed() || !response.reply->success()) {
        endpoint_failed(response, "MAIL (replay)");
        return replay_envelope(done);
      }
      transaction_open_ = true;
      replay_recipient(0, done);
    });
  });
}

void PassthroughRelay::replay_recipient(std::size_t index, Done done) {
  if (index >= recipients_.size()) return done(true);
  upstream_->command("RCPT TO:<" + recipients_[index] + ">",
                     [this, index, done](const UpstreamResponse& response) {
                       // The client was already told this recipient is accepted: an
                       // endpoint that refuses it cannot take this message.
                       if (response.connection_failed() || !response.reply->success()) {
                         endpoint_failed(response, "RCPT (replay)");
                         return replay_envelope(done);
                       }
                       replay_recipient(index + 1, done);
                     });
}

void PassthroughRelay::deliver(ReplyCallback callback) {
  deliver_callback_ = std::move(callback);
  deliver_started_ = std::chrono::steady_clock::now();
  if (body_.failed()) {
    log::error("body_store_failed", {{"session", session_id_}, {"detail", body_.error()}});
    return finish(
        smtp::make_reply(451, "4.3.0", "Local error storing the message, try again later"),
        metrics::MessageResult::Deferred);
  }
  send_data();
}

void PassthroughRelay::send_data() {
  auto retry_elsewhere = [this](const UpstreamResponse& response, const char* stage) {
    endpoint_failed(response, stage);
    replay_envelope([this](bool ok) {
      if (!ok) return finish(unreachable_reply(), metrics::MessageResult::Deferred);
      send_data();
    });
  };
  if (!upstream_)
    return retry_elsewhere(UpstreamResponse{std::nullopt, {FailureReason::Closed, "no upstream"}},
                           "DATA");
  upstream_->command("DATA", [this, retry_elsewhere](const UpstreamResponse& response) {
    // 354 is the one good answer here; anything else but a 5xx verdict goes elsewhere.
    if (response.connection_failed()) return retry_elsewhere(response, "DATA");
    if (response.reply->code != 354) {
      // MAIL and RCPT are still open upstream: finish() hands the connection to the
      // pool, which sends RSET before anyone uses it again.
      if (response.reply->permanent())
        return finish(client_reply(*response.reply, "5.0.0"), metrics::MessageResult::Failed);
      return retry_elsewhere(response, "DATA");
    }
    upstream_->send_body(body_, [this, retry_elsewhere](const UpstreamResponse& response) {
      if (failover_worthy(response)) return retry_elsewhere(response, "end of data");
      if (response.reply->permanent())
        return finish(client_reply(*response.reply, "5.0.0"), metrics::MessageResult::Failed);
      // Only 2xx accepts a message; a 3xx after the final dot is not an answer to it.
      if (response.reply->code / 100 != 2) return retry_elsewhere(response, "end of data");
      auto reply = client_reply(*response.reply, "2.0.0");
      reply.lines = {reply.enhanced + " Ok: relayed via " + upstream_->endpoint().label() + ": " +
                     response.reply->message()};
      finish(reply, metrics::MessageResult::Relayed);
    });
  });
}

void PassthroughRelay::finish(const smtp::Reply& reply, metrics::MessageResult result) {
  transaction_open_ = false;
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - deliver_started_).count();
  metrics_.message(result);
  if (result == metrics::MessageResult::Relayed) metrics_.message_relayed(seconds, body_.size());
  std::string endpoint = upstream_ ? upstream_->endpoint().label() : "none";
  log::write(result == metrics::MessageResult::Relayed ? log::Level::Info : log::Level::Warn,
             "message",
             {{"session", session_id_},
              {"message", message_id_},
              {"result", metrics::to_string(result)},
              {"from", sender_.address},
              {"recipients", std::to_string(recipients_.size())},
              {"size", std::to_string(body_.size())},
              {"endpoint", endpoint},
              {"reply", reply.summary()},
              {"ms", std::to_string(static_cast<long>(seconds * 1000))}});
  body_.clear();
  recipients_.clear();
  // Between transactions the session holds no upstream: an idle client costs nothing
  // upstream, and the next message of any session can reuse this connection.
  release_upstream();
  auto callback = std::move(deliver_callback_);
  deliver_callback_ = nullptr;
  if (callback) callback(reply);
}

void PassthroughRelay::reset() {
  recipients_.clear();
  body_.clear();
  release_upstream();
}

}  // namespace portrelay::relay
