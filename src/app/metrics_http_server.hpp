#pragma once
// The metrics listener: GET/HEAD /metrics (Prometheus text format), /healthz and /readyz
// (HealthStatus), on one port, served by libmicrohttpd from one thread of its own.
//
// Why not the prometheus-cpp Exposer: its civetweb server gives every connection a thread
// of a fixed pool (2) until the request is complete or 30 s pass, so two idle connections
// held open from anywhere stopped /healthz answering, and a liveness probe restarted the
// daemon. libmicrohttpd here waits on epoll: an idle or dripping connection costs a socket
// and a small buffer, never a thread, and every complete request is answered at once.
//
// Bounds (each one why it is what it is):
//  * a connection with no byte in `kIdleTimeout` is closed;
//  * at most `connection_limit()` connections at once (a quarter of the descriptors this
//    process may open, at most 4096), so the metrics port can never starve the SMTP
//    listeners of descriptors;
//  * at most a quarter of that from one IP address, so one client cannot take them all;
//  * 16 KiB of request per connection (a probe's or a scrape's headers are under 1 KiB).
//
// Served from its own thread on purpose: /healthz must still answer (503) while the
// event loop is stuck, which a server on that loop could not.
#include <chrono>
#include <cstdint>
#include <memory>

#include "portrelay/app/health_status.hpp"
#include "portrelay/config/config.hpp"
#include "portrelay/metrics/metrics.hpp"

struct MHD_Daemon;

namespace portrelay {

class MetricsHttpServer {
 public:
  static constexpr std::chrono::seconds kIdleTimeout{10};

  // Binds `listen` and starts serving. Throws std::runtime_error naming the address when
  // it cannot. `metrics` and `health` must outlive the server.
  MetricsHttpServer(const config::ListenAddress& listen, const metrics::Metrics& metrics,
                    std::shared_ptr<const HealthStatus> health);
  // Stops the thread and closes every connection.
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  std::uint16_t port() const { return port_; }
  unsigned connection_limit() const { return connection_limit_; }
  const metrics::Metrics& metrics() const { return metrics_; }
  const HealthStatus& health() const { return *health_; }

 private:
  const metrics::Metrics& metrics_;
  std::shared_ptr<const HealthStatus> health_;
  std::uint16_t port_ = 0;
  unsigned connection_limit_ = 0;
  MHD_Daemon* daemon_ = nullptr;
};

}  // namespace portrelay
