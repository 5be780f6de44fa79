#include <uv.h>

#include <algorithm>
#include <memory>
#include <string>

#include "portrelay/net/loop.hpp"
#include "portrelay/net/loop_thread.hpp"
#include "portrelay/probe/probe.hpp"
#include "portrelay/relay/endpoint_runtime.hpp"

namespace portrelay::probe {
namespace {

// A server that says nothing after TCP connect on these ports is most likely waiting for a
// TLS ClientHello: they are where providers run implicit TLS (465, and 2465 at SES/Resend).
bool commonly_implicit_tls(std::uint16_t port) { return port == 465 || port == 2465; }
// How long `probe` waits for a greeting there before saying so. A working SMTP submission
// server greets within milliseconds; the relay itself still waits greeting_timeout.
constexpr config::Duration kSilentImplicitPortWait = std::chrono::milliseconds(1500);

// A hint for the TLS mode the endpoint's failure suggests, or "".
std::string tls_mode_hint(const config::Endpoint& endpoint, FailureReason reason,
                          const std::string& detail) {
  if (reason == FailureReason::GreetingTimeout && endpoint.tls != TlsMode::Implicit &&
      commonly_implicit_tls(endpoint.port)) {
    return "; port " + std::to_string(endpoint.port) +
           " is commonly implicit TLS and the server is silent (waiting for a TLS handshake?): "
           "try tls = \"implicit\"";
  }
  // OpenSSL's words for a first record that is not TLS, e.g. a plaintext "220 ..." greeting.
  if (reason == FailureReason::TlsHandshake && endpoint.tls == TlsMode::Implicit &&
      (detail.find("wrong version number") != std::string::npos ||
       detail.find("packet length too long") != std::string::npos ||
       detail.find("record layer failure") != std::string::npos)) {
    return "; the server answered in plain text (an SMTP greeting?): try tls = \"starttls\"";
  }
  return "";
}

}  // namespace

std::vector<EndpointProbe> run_probes(const config::Config& config) {
  auto runtimes = relay::build_endpoint_runtimes(config);
  std::vector<EndpointProbe> results(runtimes.size());
  uv_loop_t raw;
  uv_loop_init(&raw);
  {
    net::Loop loop(&raw);
    std::vector<std::unique_ptr<relay::UpstreamConnection>> connections;
    auto started = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < runtimes.size(); ++i) {
      results[i].endpoint = runtimes[i]->endpoint;
      relay::UpstreamTimeouts timeouts = relay::timeouts_from(config.relay);
      if (runtimes[i]->endpoint.tls != TlsMode::Implicit &&
          commonly_implicit_tls(runtimes[i]->endpoint.port)) {
        timeouts.greeting = std::min(timeouts.greeting, kSilentImplicitPortWait);
      }
      connections.push_back(std::make_unique<relay::UpstreamConnection>(loop, runtimes[i], timeouts,
                                                                        config.relay.helo_name));
    }
    for (std::size_t i = 0; i < connections.size(); ++i) {
      relay::UpstreamConnection* connection = connections[i].get();
      connection->connect([&, i, connection](std::optional<relay::AttemptFailure> failure) {
        auto& result = results[i];
        result.elapsed_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
                .count();
        result.trace = connection->trace();
        result.ok = !failure;
        if (failure) {
          result.reason = failure->reason;
          result.detail =
              failure->detail + tls_mode_hint(result.endpoint, failure->reason, failure->detail);
        } else {
          connection->quit();
        }
      });
    }
    uv_run(&raw, UV_RUN_DEFAULT);
  }  // connections closed here
  net::drain_and_close(&raw);
  return results;
}

}  // namespace portrelay::probe
