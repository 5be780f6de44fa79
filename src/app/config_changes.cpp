#include "portrelay/app/config_changes.hpp"

#include <algorithm>

#include "portrelay/relay/endpoint_identity.hpp"

namespace portrelay {
namespace {

std::string addresses(const std::vector<config::ListenAddress>& list) {
  std::string out;
  for (const auto& address : list) out += (out.empty() ? "" : ",") + address.str();
  return "[" + out + "]";
}

std::string metrics_endpoint(const config::MetricsConfig& metrics) {
  return metrics.enabled ? metrics.listen.str() : "disabled";
}

// Everything about an endpoint except its position: the relay's definition of the same
// upstream reached the same way, and the name (a renamed endpoint's series get a new label).
bool same_settings(const config::Endpoint& a, const config::Endpoint& b) {
  return a.name == b.name && relay::same_connection_settings(a, b);
}

}  // namespace

std::optional<std::string> restart_required(const config::Config& running,
                                            const config::Config& next) {
  auto changed = [](const std::string& key, const std::string& from, const std::string& to) {
    return key + " changed from " + from + " to " + to +
           ": listening addresses are bound at start only; restart portrelay to apply this "
           "file (the running configuration is kept)";
  };
  if (addresses(running.server.listen) != addresses(next.server.listen))
    return changed("server.listen", addresses(running.server.listen),
                   addresses(next.server.listen));
  if (addresses(running.server.listen_implicit_tls) != addresses(next.server.listen_implicit_tls))
    return changed("server.listen_implicit_tls", addresses(running.server.listen_implicit_tls),
                   addresses(next.server.listen_implicit_tls));
  if (metrics_endpoint(running.metrics) != metrics_endpoint(next.metrics))
    return changed("metrics", metrics_endpoint(running.metrics), metrics_endpoint(next.metrics));
  // Each worker is a thread with its own loop and listener sockets, started with the daemon.
  if (running.server.workers != next.server.workers)
    return "server.workers changed from " + std::to_string(running.server.workers) + " to " +
           std::to_string(next.server.workers) +
           ": worker loops are started at start only; restart portrelay to apply this file (the "
           "running configuration is kept)";
  // The spool is opened and locked at start; switching it on, off or elsewhere needs one.
  auto spool = [](const config::Config& config) {
    return config.relay.uses_spool() ? config.spool.dir : std::string("off");
  };
  if (spool(running) != spool(next))
    return "the spool changed from " + spool(running) + " to " + spool(next) +
           ": the spool is opened at start only; restart portrelay to apply this file (the "
           "running configuration is kept)";
  return std::nullopt;
}

ChainChanges compare_chains(const std::vector<config::Endpoint>& running,
                            const std::vector<config::Endpoint>& next) {
  ChainChanges changes;
  changes.endpoints = next.size();
  std::vector<relay::EndpointIdentity> kept_old_order, kept_new_order;
  for (const auto& endpoint : next) {
    auto match = std::find_if(running.begin(), running.end(), [&](const config::Endpoint& old) {
      return relay::identity_of(old) == relay::identity_of(endpoint);
    });
    if (match == running.end()) {
      ++changes.added;
      continue;
    }
    kept_new_order.push_back(relay::identity_of(endpoint));
    (same_settings(*match, endpoint) ? changes.unchanged : changes.changed)++;
  }
  for (const auto& endpoint : running) {
    bool kept = std::any_of(next.begin(), next.end(), [&](const config::Endpoint& candidate) {
      return relay::identity_of(candidate) == relay::identity_of(endpoint);
    });
    if (kept)
      kept_old_order.push_back(relay::identity_of(endpoint));
    else
      ++changes.removed;
  }
  changes.reordered = kept_old_order != kept_new_order;
  return changes;
}

}  // namespace portrelay
