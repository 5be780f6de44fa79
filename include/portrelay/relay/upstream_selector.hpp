#pragma once
// Chooses the upstream endpoint for a message and hands over a ready connection.
// The relay only sees this interface, so the strategy can change without touching it.
// The implementation is RacingSelector (racing_selector.hpp).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "portrelay/config/route.hpp"
#include "portrelay/relay/endpoint_runtime.hpp"
#include "portrelay/relay/upstream_connection.hpp"
#include "portrelay/relay/upstream_gate.hpp"

namespace portrelay::relay {

struct EndpointFailure {
  std::size_t endpoint_index = 0;
  AttemptFailure failure;
};

struct Selection {
  std::unique_ptr<UpstreamConnection> connection;  // null: nothing reachable
  std::vector<EndpointFailure> failures;           // endpoints that failed on the way
};

// An attempt in progress; destroying it cancels the attempt without calling back.
class SelectionAttempt {
 public:
  virtual ~SelectionAttempt() = default;
};

class UpstreamSelector {
 public:
  using Callback = std::function<void(Selection selection)>;
  virtual ~UpstreamSelector() = default;
  // Finds a ready connection on `route` (one of route()'s answers), trying its endpoints
  // not in `exclude`, healthy ones first, each group in the route's order. The callback
  // always runs later on the loop (never from inside select()).
  virtual std::unique_ptr<SelectionAttempt> select(const config::Route& route,
                                                   const std::set<std::size_t>& exclude,
                                                   Callback callback) = 0;
  // The same on the default route (every endpoint, in chain order).
  std::unique_ptr<SelectionAttempt> select(const std::set<std::size_t>& exclude,
                                           Callback callback) {
    return select(route(""), exclude, std::move(callback));
  }
  // The [[route]] called `name` in this selector's configuration, with endpoint indices of
  // its chain; the default route for "" and for a name it does not have (a reload removed
  // the route of a queued message: it takes the default).
  virtual const config::Route& route(std::string_view name) const = 0;
  // The first [[route]] whose senders match `sender`, or the default route.
  virtual const config::Route& route_for_sender(std::string_view sender) const = 0;
  // Hands back a ready connection whose transaction is finished or abandoned, for reuse.
  virtual void release(std::unique_ptr<UpstreamConnection> connection) = 0;
  // A ready endpoint failed inside a transaction (Transaction decided it counts): it cools
  // down like after a connect failure, so later messages do not wait on it again.
  virtual void record_transaction_failure(std::size_t endpoint_index,
                                          const AttemptFailure& failure) = 0;
  virtual const std::vector<EndpointRuntimePtr>& endpoints() const = 0;

  // What endpoint `index`'s EHLO said of message size (endpoint_sizes.hpp): nullopt when
  // not seen yet, 0 for no limit.
  virtual std::optional<std::uint64_t> size_limit(std::size_t /*index*/) const {
    return std::nullopt;
  }
  // The largest message some endpoint may accept, at most `bound` ([server]
  // max_message_size): portrelay's own EHLO SIZE.
  virtual std::uint64_t largest_message(std::uint64_t bound) const { return bound; }

  // True when every endpoint is cooling down or being probed, now: a selection would start
  // but give up after one stagger unless an endpoint has just recovered. (The defaults
  // here suit a selector without health memory.)
  virtual bool all_cooling_down() const { return false; }
  // Recovery mode, for while messages wait for the chain (the spool turns it on while it
  // holds deferred ones): down endpoints preferred to the best working one are probed
  // before their cool-down ends, 1 s after a failure doubling up to 10 s by default
  // ([relay] recovery_probe_min/max), one probe per endpoint at a time. Messages keep
  // respecting the cool-down.
  virtual void set_recovery_probing(bool /*on*/) {}
  // `callback(index)` runs on the loop, on a later turn (never inside select() or a
  // connection's callback), when an endpoint that had failed or was suspect is ready again:
  // found by a probe, or by winning a race. Replaces the earlier callback; empty: none.
  virtual void set_on_endpoint_up(std::function<void(std::size_t index)> /*callback*/) {}

  // Upstream limits (issue #18; UpstreamGate). The defaults suit a selector without them.
  // The limits and reply rules of the upstream endpoint `index` belongs to; null: none.
  virtual const config::UpstreamLimits* limits_of(std::size_t /*index*/) const { return nullptr; }
  // Endpoint `index`'s upstream answered a throttling or quota reply: pause all of it.
  virtual void record_throttle(std::size_t /*index*/, PauseKind /*kind*/,
                               const smtp::Reply& /*reply*/) {}
  // A transient refusal at MAIL, DATA or end of data (outlier detection), or a delivery.
  virtual void record_refusal(std::size_t /*index*/) {}
  // `recipients`: how many of its recipients the upstream accepted (RCPT 250): they count
  // toward its max_recipients_per_day.
  virtual void record_delivered(std::size_t /*index*/, std::size_t /*recipients*/) {}
  // When a new message could start on some upstream of the chain: nullopt now, else the
  // earliest time (UpstreamGate::kWhenConnectionFrees: when a connection closes; then
  // set_on_capacity's callback says so). The spool asks before starting a delivery.
  virtual std::optional<UpstreamGate::TimePoint> message_wait() const { return std::nullopt; }
  // `callback` runs on a later loop turn when a limit that had no known end may allow more:
  // a connection of a capped upstream closed. Replaces the earlier callback; empty: none.
  virtual void set_on_capacity(std::function<void()> /*callback*/) {}
};

}  // namespace portrelay::relay
