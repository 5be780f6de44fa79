#include "portrelay/spool/spool_sinks.hpp"

#include <cstdlib>
#include <utility>

#include "portrelay/base/log.hpp"
#include "portrelay/relay/message_ledger.hpp"

namespace portrelay::spool {

LocalTransaction::LocalTransaction(Spool& spool, metrics::Metrics& metrics, std::string session_id)
    : spool_(spool),
      metrics_(metrics),
      session_id_(std::move(session_id)),
      body_(std::make_unique<relay::MessageBody>()),
      alive_(std::make_shared<bool>(true)) {}

void LocalTransaction::begin(const smtp::PathArgument& sender) {
  reset();
  sender_ = sender;
}

void LocalTransaction::reset() {
  alive_ = std::make_shared<bool>(true);  // a store under way is forgotten
  recipients_.clear();
  if (!body_) body_ = std::make_unique<relay::MessageBody>();
  body_->clear();
}

void LocalTransaction::store(const std::string& suffix,
                             relay::MessageSink::ReplyCallback callback) {
  if (body_->failed()) {
    log::error("body_store_failed", {{"session", session_id_}, {"detail", body_->error()}});
    relay::MessageLedger(metrics_).deferred_locally();
    callback(smtp::make_reply(451, "4.3.0", "Local error storing the message, try again later"));
    return;
  }
  if (auto refusal = spool_.admit(body_->size())) {
    relay::MessageLedger(metrics_).deferred_locally();
    callback(*refusal);
    return;
  }
  auto body = std::exchange(body_, std::make_unique<relay::MessageBody>());
  spool_.accept(
      sender_, recipients_, std::move(body), session_id_,
      [this, alive = std::weak_ptr<bool>(alive_), suffix,
       callback = std::move(callback)](Result<std::string> id) {
        if (alive.expired()) return;  // the session went away or reset meanwhile
        if (!id) {
          relay::MessageLedger(metrics_).deferred_locally();
          callback(smtp::make_reply(451, "4.3.0",
                                    "Local error: the message could not be queued, "
                                    "try again later"));
          return;
        }
        // An event, not an outcome: the message counts when it leaves the queue.
        metrics_.queue_accepted(spool_.route_for_sender(sender_.address));  // logged: `queued`
        recipients_.clear();
        callback(smtp::make_reply(250, "2.0.0", "Ok: queued as " + *id + suffix));
      });
}

QueueingSink::QueueingSink(Spool& spool, metrics::Metrics& metrics, std::string session_id)
    : spool_(spool), local_(spool, metrics, std::move(session_id)) {}

void QueueingSink::sender(const smtp::PathArgument& sender, ReplyCallback callback) {
  std::uint64_t announced = 0;
  if (const auto* size = sender.find("SIZE"))
    announced = std::strtoull(size->value.c_str(), nullptr, 10);
  if (auto refusal = spool_.admit(announced)) {
    callback(*refusal);
    return;
  }
  local_.begin(sender);
  callback(smtp::make_reply(250, "2.1.0", "Ok"));
}

void QueueingSink::recipient(const smtp::PathArgument& recipient, ReplyCallback callback) {
  local_.add(recipient.address);
  callback(smtp::make_reply(250, "2.1.5", "Ok"));
}

void QueueingSink::commit(ReplyCallback callback) { local_.store("", std::move(callback)); }

FallbackSink::FallbackSink(net::Loop& loop, std::shared_ptr<relay::UpstreamSelector> selector,
                           Spool& spool, metrics::Metrics& metrics, std::string session_id)
    : spool_(spool),
      ledger_(metrics),
      session_id_(session_id),
      local_(spool, metrics, session_id),
      deliverer_(loop, std::move(selector), metrics, session_id) {}

void FallbackSink::queue_instead() {
  queued_ = true;
  // Abandons the upstream transaction; the pool clears it with RSET before reuse.
  deliverer_.reset();
}

void FallbackSink::sender(const smtp::PathArgument& sender, ReplyCallback callback) {
  queued_ = false;
  local_.begin(sender);
  message_id_ = session_id_ + "." + std::to_string(++message_count_);
  sender_ = sender.address;
  original_sender_ = sender.original_address;
  deliverer_.open(
      sender, message_id_,
      [this, callback = std::move(callback)](const smtp::Reply& reply,
                                             const relay::DeliveryReport* ended) {
        if (reply.transient()) {
          const AdmissionVerdict room = spool_.admission(0);
          if (room == AdmissionVerdict::Admitted) {
            log::info("queueing_instead", {{"stage", "MAIL"}, {"reply", reply.summary()}});
            queue_instead();
            callback(
                smtp::make_reply(250, "2.1.0", "Ok (no upstream now: the message will be queued)"));
            return;
          }
          spool_.refuse(room, 0);  // the spool cannot take it either: its refusal is counted
        }
        if (ended)
          ledger_.client_message(session_id_, message_id_, sender_, *ended, original_sender_);
        callback(reply);
      },
      deliverer_.selector().route_for_sender(sender.address).name);
}

void FallbackSink::recipient(const smtp::PathArgument& recipient, ReplyCallback callback) {
  if (queued_) {
    local_.add(recipient.address);
    callback(smtp::make_reply(250, "2.1.5", "Ok"));
    return;
  }
  deliverer_.add_recipient(
      recipient.address, [this, address = recipient.address, callback = std::move(callback)](
                             const smtp::Reply& reply, const relay::DeliveryReport*) {
        if (reply.success()) {
          local_.add(address);
        } else if (reply.transient()) {
          log::info("queueing_instead", {{"stage", "RCPT"}, {"reply", reply.summary()}});
          local_.add(address);
          queue_instead();
          callback(smtp::make_reply(250, "2.1.5", "Ok (will be queued)"));
          return;
        }
        callback(reply);
      });
}

void FallbackSink::commit(ReplyCallback callback) {
  if (queued_) {
    local_.store(" for retry", std::move(callback));
    return;
  }
  // The body stays the local transaction's: the deliverer reads it, and if no endpoint
  // takes the message now it is stored from there.
  deliverer_.send(local_.body(), [this, callback = std::move(callback)](
                                     const smtp::Reply& reply, const relay::DeliveryReport* ended) {
    if (!reply.transient()) {
      if (ended)
        ledger_.client_message(session_id_, message_id_, sender_, *ended, original_sender_);
      callback(reply);
      return;
    }
    log::info("queueing_instead", {{"stage", "end of data"}, {"reply", reply.summary()}});
    queue_instead();
    local_.store(" for retry", callback);
  });
}

void FallbackSink::reset() {
  queued_ = false;
  local_.reset();
  deliverer_.reset();
}

}  // namespace portrelay::spool
