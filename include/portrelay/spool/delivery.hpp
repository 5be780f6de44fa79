#pragma once
// spool::Delivery: one attempt to deliver a queued message.
//
// The queued file is the body (read in place, never copied), a relay::Deliverer over the
// current selector (racing, health memory, pool, failover) carries the sender and the
// recipients still pending, and its DeliveryReport becomes an AttemptResult
// (attempt_result() in delivery_plan.hpp). Nothing here touches the queue or counts the
// message: the caller settles the result (delivery_plan.hpp) and, when the message leaves
// the queue, counts it (relay::MessageLedger). It logs one `delivery_attempt` line.
//
// Contract: `done` is called exactly once, from a callback on the loop (never from
// start()); the caller may only destroy the Delivery through net::Loop::defer_delete once
// `done` ran, or at any time before (the attempt is abandoned, the connection released).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/relay/deliverer.hpp"
#include "portrelay/relay/message_body.hpp"
#include "portrelay/relay/upstream_selector.hpp"
#include "portrelay/spool/delivery_plan.hpp"
#include "portrelay/spool/env.hpp"
#include "portrelay/spool/spool_record.hpp"

namespace portrelay::spool {

class Delivery {
 public:
  using Done = std::function<void(AttemptResult result)>;

  // `id` in the directory `directory_fd` (queue/): the message file, opened with
  // open_spool_file() through `env`; `layout` where its body is; `state` which recipients
  // are pending.
  Delivery(net::Loop& loop, std::shared_ptr<relay::UpstreamSelector> selector,
           metrics::Metrics& metrics, Env& env, int directory_fd, std::string id,
           const RecordLayout& layout, const DeliveryState& state, Done done);
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;

  void start();
  // Gives up the attempt now: the connection is released and `done` will not be called,
  // even by a callback already on its way. For a caller about to defer_delete() this
  // Delivery from outside its callbacks (operator command, shutdown).
  void abandon();

 private:
  void finish(const relay::DeliveryReport& report);

  net::Loop& loop_;
  Env& env_;
  int directory_fd_;
  std::string id_;
  const RecordLayout layout_;
  std::vector<std::size_t> pending_;  // recipient indexes to try, in order
  relay::MessageBody body_;
  std::unique_ptr<net::Timer> open_failed_;  // reports a file that would not open, async
  Done done_;
  relay::Deliverer deliverer_;  // last: destroyed first, while the body is alive
};

}  // namespace portrelay::spool
