#pragma once
// spool::DeliveryScheduler: when each queued message is tried, over a QueueIndex. Time and
// jitter come from the injected Clock, so every rule below is unit-tested under a fake
// clock. No I/O: the spool's glue starts the deliveries and carries out the settlements.
//
//  * Due order (queue_index.hpp): oldest due first, at most max_deliveries at a time.
//  * While every endpoint cools down, nothing is started (cool-downs are respected): the
//    glue turns recovery probing on, and the first endpoint back flushes the queue.
//  * A message whose attempt found no endpoint to take it waits for the chain: it is due
//    at once when an endpoint comes back (endpoint_up), whatever its backoff said.
//  * Upstream limits: nothing is started while no upstream may take a message now (paused
//    after a throttle, no token, every connection in use; limit_wait says for how long),
//    so no attempt is bound to be held back or refused: the glue arms a timer for that
//    exact time (or waits for a connection to close) instead of polling.
//  * A throttled attempt (the upstream said "slow down") is due again 1 s later and does
//    not count toward the backoff: the limits, not the retry schedule, decide when.
//  * Otherwise a transient failure waits retry_min * 2^(attempts-1), capped at retry_max,
//    times the clock's jitter (delivery_plan.hpp's settle()).
//  * Expiry: a message still in queue/ max_lifetime after its arrival is bounced by the
//    scan even if no attempt ends (every endpoint down for days); a message in failed/
//    is forgotten failed_lifetime after it got there.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "portrelay/spool/clock.hpp"
#include "portrelay/spool/delivery_plan.hpp"
#include "portrelay/spool/queue_index.hpp"

namespace portrelay::spool {

class DeliveryScheduler {
 public:
  struct Limits {
    std::size_t max_deliveries = 32;
    RetryPolicy retry;
    Millis failed_lifetime{7LL * 24 * 3600 * 1000};
  };

  struct Next {
    enum class Kind {
      Nothing,        // nothing is due, or max_deliveries run
      Deliver,        // start an attempt on `id` (now InFlight)
      Finish,         // `id` has no pending recipient: settle it as it stands (the glue
                      // must take it out of due order: removed, Bouncing or Failed)
      HoldForChain,   // something is due but every endpoint cools down: probe for recovery
      HoldForLimits,  // something is due but no upstream's limits allow a message before
                      // `wait_ms` from now (-1: until a connection closes)
    };
    Kind kind = Kind::Nothing;
    std::string id;
    std::int64_t wait_ms = 0;
  };

  struct Expiry {
    std::vector<std::string> expired;    // in queue/ past max_lifetime, not busy
    std::vector<std::string> forgotten;  // in failed/ past failed_lifetime
  };

  DeliveryScheduler(QueueIndex& index, Clock clock, Limits limits);

  void set_limits(const Limits& limits) { limits_ = limits; }
  const Limits& limits() const { return limits_; }

  // Asked only when it matters (something is due and a slot is free): whether every
  // endpoint cools down now.
  using AllCoolingDown = std::function<bool()>;
  // Asked only when a message would start: nullopt when some upstream may take one now,
  // else how many ms until one may (-1: not known; when a connection closes).
  using LimitWait = std::function<std::optional<std::int64_t>()>;

  // The next step with `running` deliveries in flight. Deliver marks the entry InFlight;
  // call again until Nothing, HoldForChain or HoldForLimits.
  Next next(std::size_t running, const AllCoolingDown& all_cooling_down,
            const LimitWait& limit_wait = nullptr);
  // An attempt on `id` ended: the entry waits again (for the chain, when `no_endpoint`:
  // none took the transaction) and its settlement is computed for now, with jitter. The
  // glue applies it (QueueIndex::set_state) and carries it out.
  Settlement attempt_done(const std::string& id, const AttemptResult& result, bool no_endpoint);
  // An attempt on `id` was abandoned from outside (operator command): it waits again.
  void abandoned(const std::string& id);
  // A settled message's bounce could not be stored: it is finished again retry_min later
  // (the original stays queued: no loss).
  void bounce_not_stored(const std::string& id);

  // An endpoint is back: every entry that waited for the chain is due now (its backoff is
  // cut short, never extended). How many.
  std::size_t endpoint_up();
  // `portrelay queue retry`: the entry `id`, or every one ("" or "all"), that is in
  // queue/ and not busy is due now. How many.
  std::size_t retry_now(const std::string& id);
  // Whether the queue is held up by the chain (the first entry due waited for it, or
  // every endpoint cools down): worth probing the chain early.
  bool held_up(const AllCoolingDown& all_cooling_down) const;
  Expiry expiry_scan() const;

 private:
  QueueIndex& index_;
  Clock clock_;
  Limits limits_;
};

}  // namespace portrelay::spool
