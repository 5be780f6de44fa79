#pragma once
// Chooses the upstream endpoint for a message and hands over a ready connection.
// The relay only sees this interface, so the strategy (sequential today, staggered
// racing with health memory later) can change without touching the relay.
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
  virtual const std::vector<EndpointRuntime>& endpoints() const = 0;
};

// Tries endpoints one after another in chain order, each bounded by its own timeouts.
class SequentialSelector : public UpstreamSelector {
 public:
  SequentialSelector(uv_loop_t* loop, std::vector<EndpointRuntime> endpoints,
                     UpstreamTimeouts timeouts, std::string helo_name, metrics::Metrics& metrics);
  std::unique_ptr<SelectionAttempt> select(const std::set<std::size_t>& exclude,
                                           Callback callback) override;
  const std::vector<EndpointRuntime>& endpoints() const override { return endpoints_; }

 private:
  class Attempt;
  uv_loop_t* loop_;
  std::vector<EndpointRuntime> endpoints_;
  UpstreamTimeouts timeouts_;
  std::string helo_name_;
  metrics::Metrics& metrics_;
};

}  // namespace portrelay::relay
