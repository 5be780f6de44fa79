#pragma once
// spool::Service: the spool side of one daemon, in one object.
//
// It owns the queue (Spool), its control socket (ControlServer: `portrelay queue` and
// `portrelay reload` while the daemon runs) and the factory that joins client sessions to
// the queue: the sink each session gets (QueueingSink in spool mode, FallbackSink with
// spool_on_failure). Background deliveries go through a relay::Deliverer over the selector
// given to start() and reconfigure(). The daemon makes one when its configuration uses a
// spool, and drives it:
//
//   Service(...)                    the queue's settings; nothing touched on disk yet
//   start(selector, reload)         locks and recovers the directory (what was queued
//                                   before is delivered over `selector`), then opens the
//                                   control socket
//   session_sinks(relay, selector)  the sink factory of one configuration snapshot
//   reconfigure(config, selector)   a reload: limits, retry schedule, maildrop limits, and
//                                   deliveries go over the new selector
//   stop_starting_deliveries()      the sessions' grace has begun
//   shutdown(deadline, done)        closes the control socket, lets deliveries in flight
//                                   finish until `deadline`, abandons the rest (they stay
//                                   queued), finishes the writes; then `done`
//
// The queue's metrics are the Spool's own. Loop thread only.
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "portrelay/config/config.hpp"
#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/relay/message_sink.hpp"
#include "portrelay/relay/upstream_selector.hpp"
#include "portrelay/spool/control_server.hpp"
#include "portrelay/spool/spool.hpp"

namespace portrelay::spool {

class Service {
 public:
  using SessionSinkFactory =
      std::function<std::unique_ptr<relay::MessageSink>(const std::string& session_id)>;
  // Answers the control socket's "reload" request: "ok ..." or "error <why>".
  using ReloadHandler = std::function<std::string()>;

  // `config` must use a spool (RelayConfig::uses_spool).
  Service(net::Loop& loop, const config::Config& config, metrics::Metrics& metrics);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Throws std::runtime_error (another daemon holds the spool, no permission, the control
  // socket cannot be bound).
  void start(std::shared_ptr<relay::UpstreamSelector> selector, ReloadHandler reload);
  // What a client session of a snapshot with `relay` settings hands its message to. The
  // sinks refer to this Service: it must outlive every session.
  SessionSinkFactory session_sinks(const config::RelayConfig& relay,
                                   std::shared_ptr<relay::UpstreamSelector> selector);
  // The spool's directory must not change (restart_required refuses that).
  void reconfigure(const config::Config& config, std::shared_ptr<relay::UpstreamSelector> selector);
  void stop_starting_deliveries() { spool_.stop_starting_deliveries(); }
  void shutdown(std::chrono::steady_clock::time_point deadline, std::function<void()> done);

  Spool& spool() { return spool_; }

 private:
  net::Loop& loop_;
  metrics::Metrics& metrics_;
  Spool spool_;
  std::unique_ptr<ControlServer> control_;  // from start() on
};

}  // namespace portrelay::spool
