#include <uv.h>

#include <memory>

#include "portrelay/net/loop.hpp"
#include "portrelay/net/loop_thread.hpp"
#include "portrelay/probe/probe.hpp"
#include "portrelay/relay/endpoint_runtime.hpp"

namespace portrelay::probe {

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
      connections.push_back(std::make_unique<relay::UpstreamConnection>(
          loop, runtimes[i], relay::timeouts_from(config.relay), config.relay.helo_name));
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
          result.detail = failure->detail;
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
