#pragma once
// The two message sinks that put mail in the spool.
//
// QueueingSink ([relay] mode = "spool"): MAIL and RCPT are answered locally, and the
// client's 250 after DATA means the message is durably queued ("250 2.0.0 Ok: queued as
// <id>"); delivery happens in the background.
//
// FallbackSink (passthrough with spool_on_failure): the message is relayed as in
// passthrough mode, and a permanent refusal still reaches the client, but when no
// endpoint takes it now for a transient reason (nothing reachable, a 4xx at MAIL, RCPT or
// end of data, a broken connection) the client's transaction continues locally and the
// message is queued: "250 2.0.0 Ok: queued as <id> for retry" instead of 451. A recipient
// refused with a 4xx moves the whole message to the queue (it is then delivered to every
// recipient later, from the spool).
//
// Both refuse with 452 4.3.1 when the spool is full (before anything is acknowledged) and
// 451 4.3.0 when the message cannot be written.
#include <memory>
#include <string>
#include <vector>

#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/relay/deliverer.hpp"
#include "portrelay/relay/message_ledger.hpp"
#include "portrelay/relay/message_sink.hpp"
#include "portrelay/spool/spool.hpp"

namespace portrelay::spool {

// The envelope and body of a transaction kept by the sink itself, and the store step.
class LocalTransaction {
 public:
  explicit LocalTransaction(Spool& spool, metrics::Metrics& metrics, std::string session_id);
  void begin(const smtp::PathArgument& sender);
  void add(const std::string& recipient) { recipients_.push_back(recipient); }
  relay::MessageBody& body() { return *body_; }
  // Stores the message; `callback` gets 250 (queued as <id> + suffix), 452 or 451.
  void store(const std::string& suffix, relay::MessageSink::ReplyCallback callback);
  void reset();  // forget the transaction; a pending store's callback is not called

 private:
  Spool& spool_;
  metrics::Metrics& metrics_;
  std::string session_id_;
  smtp::PathArgument sender_;
  std::vector<std::string> recipients_;
  std::unique_ptr<relay::MessageBody> body_;
  // Replaced by reset() and gone with the transaction: the store's answer comes from the
  // Committer's thread after the fsync, and the client may have reset or left by then.
  std::shared_ptr<bool> alive_;
};

class QueueingSink : public relay::MessageSink {
 public:
  QueueingSink(Spool& spool, metrics::Metrics& metrics, std::string session_id);
  void sender(const smtp::PathArgument& sender, ReplyCallback callback) override;
  void recipient(const smtp::PathArgument& recipient, ReplyCallback callback) override;
  relay::MessageBody& body() override { return local_.body(); }
  void commit(ReplyCallback callback) override;
  void reset() override { local_.reset(); }

 private:
  Spool& spool_;
  LocalTransaction local_;
};

class FallbackSink : public relay::MessageSink {
 public:
  FallbackSink(net::Loop& loop, std::shared_ptr<relay::UpstreamSelector> selector, Spool& spool,
               metrics::Metrics& metrics, std::string session_id);
  void sender(const smtp::PathArgument& sender, ReplyCallback callback) override;
  void recipient(const smtp::PathArgument& recipient, ReplyCallback callback) override;
  // One body for both ways out: the deliverer reads it, the spool stores it.
  relay::MessageBody& body() override { return local_.body(); }
  void commit(ReplyCallback callback) override;
  void reset() override;

 private:
  // From now on this message goes to the spool.
  void queue_instead();

  Spool& spool_;
  relay::MessageLedger ledger_;
  std::string session_id_;
  std::size_t message_count_ = 0;
  std::string message_id_;
  std::string sender_;
  std::string original_sender_;  // before [rewrite]; "" when not rewritten
  LocalTransaction local_;
  bool queued_ = false;
  relay::Deliverer deliverer_;  // last: destroyed first, while the body is alive
};

}  // namespace portrelay::spool
