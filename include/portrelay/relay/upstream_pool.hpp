#pragma once
// Ready upstream connections kept between messages, so a busy relay does not pay TCP,
// TLS, EHLO and AUTH for every message. Every usable connection handed back is kept, up
// to `max_per_endpoint` (a ceiling, [relay] pool_max_per_endpoint), and the newest is
// taken first, so the pool grows to the concurrency of a burst and shrinks as the ones
// no longer needed expire after `idle_timeout` (IdleSet says why this follows demand).
// A connection the server closed while idle is noticed (it is no longer usable) and
// dropped when taken. The bookkeeping is IdleSet's (pure, tested under a fake clock);
// this class adds one timer and QUIT.
#include <memory>
#include <vector>

#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/relay/endpoint_runtime.hpp"
#include "portrelay/relay/idle_set.hpp"
#include "portrelay/relay/upstream_connection.hpp"

namespace portrelay::relay {

class UpstreamPool {
 public:
  // `endpoints` is the chain of the selector that owns the pool (index = position).
  UpstreamPool(net::Loop& loop, std::vector<EndpointRuntimePtr> endpoints,
               std::size_t max_per_endpoint, config::Duration idle_timeout,
               metrics::Metrics& metrics);
  ~UpstreamPool();

  // The most recently returned usable connection for the endpoint, or null.
  std::unique_ptr<UpstreamConnection> take(std::size_t endpoint_index);
  // Keeps a ready connection with no transaction open; says QUIT if it cannot be kept.
  void give(std::unique_ptr<UpstreamConnection> connection);
  std::size_t idle(std::size_t endpoint_index) const { return idle_.size(endpoint_index); }
  // Says QUIT to every idle connection (shutdown: nothing may keep the loop alive).
  void clear();

 private:
  using Connections = std::vector<std::unique_ptr<UpstreamConnection>>;
  void close_all(Connections connections);
  void arm_expiry();
  void publish(std::size_t endpoint_index);

  net::Loop& loop_;
  std::vector<EndpointRuntimePtr> endpoints_;
  metrics::Metrics& metrics_;
  IdleSet<std::unique_ptr<UpstreamConnection>> idle_;
  net::Timer expiry_;
};

}  // namespace portrelay::relay
