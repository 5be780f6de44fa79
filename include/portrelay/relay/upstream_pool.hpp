#pragma once
// Ready upstream connections kept between messages, so a busy relay does not pay TCP,
// TLS, EHLO and AUTH for every message. Idle connections expire after `idle_timeout`;
// each endpoint keeps at most `max_per_endpoint`. A connection the server closed while
// idle is noticed (it is no longer usable) and dropped when taken.
#include <uv.h>

#include <deque>
#include <memory>
#include <vector>

#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/relay/upstream_connection.hpp"

namespace portrelay::relay {

class UpstreamPool {
 public:
  UpstreamPool(net::Loop& loop, std::size_t endpoints, std::size_t max_per_endpoint,
               config::Duration idle_timeout, metrics::Metrics& metrics);
  ~UpstreamPool();

  // The most recently returned usable connection for the endpoint, or null.
  std::unique_ptr<UpstreamConnection> take(std::size_t endpoint_index);
  // Keeps a ready connection with no transaction open; says QUIT if it cannot be kept.
  void give(std::unique_ptr<UpstreamConnection> connection);
  std::size_t idle(std::size_t endpoint_index) const { return idle_.at(endpoint_index).size(); }
  // Says QUIT to every idle connection (shutdown: nothing may keep the loop alive).
  void clear();

 private:
  struct Idle {
    std::unique_ptr<UpstreamConnection> connection;
    std::unique_ptr<net::Timer> expiry;
  };
  void publish(std::size_t endpoint_index);

  net::Loop& loop_;
  std::size_t max_per_endpoint_;
  config::Duration idle_timeout_;
  metrics::Metrics& metrics_;
  std::vector<std::deque<Idle>> idle_;
};

}  // namespace portrelay::relay
