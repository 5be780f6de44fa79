#include "portrelay/relay/passthrough_relay.hpp"

#include <utility>

namespace portrelay::relay {

PassthroughRelay::PassthroughRelay(net::Loop& loop, std::shared_ptr<UpstreamSelector> selector,
                                   metrics::Metrics& metrics, std::string session_id)
    : ledger_(metrics),
      session_id_(std::move(session_id)),
      deliverer_(loop, std::move(selector), metrics, session_id_) {}

// One answer handler for every step, holding only `this`: the client's callback waits in
// a member, so no step wraps (and allocates) another std::function.
Deliverer::Answer PassthroughRelay::answer(ReplyCallback callback) {
  pending_ = std::move(callback);
  return [this](const smtp::Reply& reply, const DeliveryReport* ended) {
    if (ended) ledger_.client_message(session_id_, message_id_, sender_, *ended, original_sender_);
    auto callback = std::move(pending_);
    pending_ = nullptr;
    callback(reply);
  };
}

void PassthroughRelay::sender(const smtp::PathArgument& sender, ReplyCallback callback) {
  message_id_ = session_id_ + "." + std::to_string(++message_count_);
  sender_ = sender.address;
  original_sender_ = sender.original_address;
  body_.clear();
  // The first [[route]] matching the sender carries it (the default route otherwise).
  deliverer_.open(sender, message_id_, answer(std::move(callback)),
                  deliverer_.selector().route_for_sender(sender.address).name);
}

void PassthroughRelay::recipient(const smtp::PathArgument& recipient, ReplyCallback callback) {
  deliverer_.add_recipient(recipient.address, answer(std::move(callback)));
}

void PassthroughRelay::commit(ReplyCallback callback) {
  deliverer_.send(body_, answer(std::move(callback)));
}

void PassthroughRelay::reset() {
  deliverer_.reset();
  pending_ = nullptr;
  body_.clear();
}

}  // namespace portrelay::relay
