#pragma once
// spool::Delivery: one attempt to deliver a queued message, as a client of a MessageSink.
//
// The background delivery speaks to the same relay as a local client does: it opens a
// transaction on a sink (a PassthroughRelay over the current selector: racing, health
// memory, pool, failover), names the recipients still pending, hands over the queued file
// as the body (read in place), and turns each answer into a RecipientResult. Nothing
// here touches the queue: the caller settles the result (delivery_plan.hpp).
//
// Contract: `done` is called exactly once, from inside a sink callback or a posted task
// (never from start()); the caller may only destroy the Delivery through
// net::Loop::defer_delete once `done` ran, or at any time before (the attempt is
// abandoned and the sink reset).
#include <functional>
#include <memory>
#include <string>

#include "portrelay/net/loop.hpp"
#include "portrelay/relay/message_sink.hpp"
#include "portrelay/spool/delivery_plan.hpp"
#include "portrelay/spool/spool_record.hpp"

namespace portrelay::spool {

class Delivery {
 public:
  using Done = std::function<void(AttemptResult result)>;

  // `name` in the directory `directory_fd` (queue/): the message file, opened with
  // open_spool_file() when the body is sent; `layout` where its body is; `state` which
  // recipients are still pending.
  Delivery(net::Loop& loop, std::unique_ptr<relay::MessageSink> sink, int directory_fd,
           std::string name, const RecordLayout& layout, const DeliveryState& state, Done done);
  ~Delivery();
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;

  void start();
  // Gives up the attempt now: the sink is reset (its connection released) and `done` will
  // not be called, even by a callback already on its way. For a caller about to
  // defer_delete() this Delivery from outside its callbacks (operator command, shutdown).
  void abandon();

 private:
  void next_recipient();
  void send_body();
  void finish();
  // Every pending recipient not yet answered gets `verdict` with `reply`.
  void answer_rest(RecipientVerdict verdict, const std::string& reply);

  net::Loop& loop_;
  std::unique_ptr<relay::MessageSink> sink_;
  int directory_fd_;
  std::string name_;
  const RecordLayout layout_;
  std::vector<std::size_t> pending_;   // recipient indexes to try
  std::size_t next_ = 0;               // into pending_
  std::vector<std::size_t> accepted_;  // RCPT 2xx on this attempt
  AttemptResult result_;
  Done done_;
};

}  // namespace portrelay::spool
