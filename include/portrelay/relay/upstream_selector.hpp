#pragma once
// Chooses the upstream endpoint for a message and hands over a ready connection.
// The relay only sees this interface, so the strategy can change without touching it.
// The implementation is RacingSelector (racing_selector.hpp).
#include <uv.h>

#include <functional>
#include <memory>
#include <set>
#include <vector>

#include "portrelay/metrics/metrics.hpp"
#include "portrelay/relay/endpoint_runtime.hpp"
#include "portrelay/relay/upstream_connection.hpp"

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
  // Finds a ready connection, trying endpoints not in `exclude`. The callback always
  // runs later on the loop (never from inside select()).
  virtual std::unique_ptr<SelectionAttempt> select(const std::set<std::size_t>& exclude,
                                                   Callback callback) = 0;
  // Hands back a ready connection whose transaction is finished or abandoned, for reuse.
  virtual void release(std::unique_ptr<UpstreamConnection> connection) = 0;
  // A ready endpoint failed inside a transaction (Transaction decided it counts): it cools
  // down like after a connect failure, so later messages do not wait on it again.
  virtual void record_transaction_failure(std::size_t endpoint_index,
                                          const AttemptFailure& failure) = 0;
  virtual const std::vector<EndpointRuntimePtr>& endpoints() const = 0;

  // Every endpoint is cooling down (or being probed) now: a delivery would only wait.
  virtual bool all_cooling_down() const { return false; }
  // While on, endpoints that are down are probed on a short schedule even while they
  // cool down (the spool turns it on while it holds deferred messages).
  virtual void set_recovery_probing(bool /*on*/) {}
  // Called on the loop when an endpoint that had failed is ready again.
  virtual void set_on_endpoint_up(std::function<void(std::size_t index)> /*callback*/) {}
};

}  // namespace portrelay::relay
