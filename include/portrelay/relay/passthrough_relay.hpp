#pragma once
// Passthrough relaying for one client session: a MessageSink over a Deliverer. The
// envelope goes upstream as the client sends it (so recipient refusals reach the client at
// RCPT), the body is kept locally until the client's end of data, then sent. This adapter
// owns the body and, as the message's outermost owner, counts and logs each finished
// message once (MessageLedger).
#include <memory>
#include <string>

#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/relay/deliverer.hpp"
#include "portrelay/relay/message_body.hpp"
#include "portrelay/relay/message_ledger.hpp"
#include "portrelay/relay/message_sink.hpp"
#include "portrelay/relay/upstream_selector.hpp"

namespace portrelay::relay {

class PassthroughRelay : public MessageSink {
 public:
  // See Deliverer for why the selector is kept.
  PassthroughRelay(net::Loop& loop, std::shared_ptr<UpstreamSelector> selector,
                   metrics::Metrics& metrics, std::string session_id);

  void sender(const smtp::PathArgument& sender, ReplyCallback callback) override;
  void recipient(const smtp::PathArgument& recipient, ReplyCallback callback) override;
  MessageBody& body() override { return body_; }
  void commit(ReplyCallback callback) override;
  void reset() override;

 private:
  // Keeps `callback` as the pending request's and returns the deliverer's handler for it.
  Deliverer::Answer answer(ReplyCallback callback);

  MessageLedger ledger_;
  std::string session_id_;
  std::size_t message_count_ = 0;
  std::string message_id_;
  std::string sender_;
  std::string original_sender_;  // before [rewrite]; "" when not rewritten
  ReplyCallback pending_;        // the client's request the deliverer is answering
  MessageBody body_;
  Deliverer deliverer_;  // last: destroyed first, while what its callbacks use is alive
};

}  // namespace portrelay::relay
