#pragma once
// `portrelay probe`: check every endpoint of the chain now, concurrently, without sending
// mail (DNS, TCP, TLS and certificate, greeting, EHLO, AUTH), and say which endpoint the
// relay would use. The runner does I/O; verdicts and rendering are pure.
#include <optional>
#include <string>
#include <vector>

#include "portrelay/base/failure_reason.hpp"
#include "portrelay/config/config.hpp"
#include "portrelay/relay/upstream_connection.hpp"

namespace portrelay::probe {

struct EndpointProbe {
  config::Endpoint endpoint;
  bool ok = false;
  std::optional<FailureReason> reason;
  std::string detail;
  relay::ConnectTrace trace;
  double elapsed_ms = 0;
};

// Probes all endpoints of `config` concurrently on a private loop; returns in chain order.
std::vector<EndpointProbe> run_probes(const config::Config& config);

// "OK", "BLOCKED (no answer in 10s)", "REFUSED", "TLS CERT ERROR", "AUTH FAILED", ...
std::string verdict(const EndpointProbe& probe, config::Duration connect_timeout);
// The endpoint the relay would use now: the first usable one in chain order.
std::optional<std::size_t> endpoint_in_use(const std::vector<EndpointProbe>& probes);
std::string format_table(const std::vector<EndpointProbe>& probes,
                         config::Duration connect_timeout);
std::string format_json(const std::vector<EndpointProbe>& probes, config::Duration connect_timeout);

}  // namespace portrelay::probe
