#include "portrelay/relay/upstream_pool.hpp"

namespace portrelay::relay {
namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

UpstreamPool::UpstreamPool(net::Loop& loop, std::vector<EndpointRuntimePtr> endpoints,
                           std::size_t max_per_endpoint, config::Duration idle_timeout,
                           metrics::Metrics& metrics)
    : loop_(loop),
      endpoints_(std::move(endpoints)),
      metrics_(metrics),
      idle_(endpoints_.size(), max_per_endpoint, idle_timeout),
      expiry_(loop.uv()) {}

UpstreamPool::~UpstreamPool() { clear(); }

void UpstreamPool::close_all(Connections connections) {
  // QUIT goes out now; a connection may be inside one of its callbacks: free it later.
  for (auto& connection : connections) {
    connection->quit();
    loop_.defer_delete(std::move(connection));
  }
}

void UpstreamPool::clear() {
  expiry_.stop();
  auto all = idle_.clear();
  for (std::size_t index = 0; index < idle_.endpoints(); ++index) publish(index);
  close_all(std::move(all));
}

void UpstreamPool::publish(std::size_t endpoint_index) {
  metrics_.pool_idle(endpoints_.at(endpoint_index)->endpoint, idle_.size(endpoint_index));
}

void UpstreamPool::arm_expiry() {
  auto next = idle_.next_expiry();
  if (!next) return expiry_.stop();
  expiry_.start(std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now()), [this]() {
    auto expired = idle_.expire(Clock::now());
    // The gauge first: whoever sees the QUIT arrive must also see it counted down.
    for (std::size_t index = 0; index < idle_.endpoints(); ++index) publish(index);
    close_all(std::move(expired));
    arm_expiry();
  });
}

std::unique_ptr<UpstreamConnection> UpstreamPool::take(std::size_t endpoint_index) {
  Connections dropped;
  auto taken = idle_.take(
      endpoint_index, [](const auto& connection) { return connection->usable(); }, dropped);
  close_all(std::move(dropped));
  publish(endpoint_index);
  arm_expiry();
  return taken ? std::move(*taken) : nullptr;
}

void UpstreamPool::give(std::unique_ptr<UpstreamConnection> connection) {
  if (!connection) return;
  std::size_t index = connection->endpoint().index;
  // Only connections made with this pool's own chain snapshot are kept: an index means
  // nothing in another chain.
  const bool ours = index < endpoints_.size() && endpoints_[index] == connection->runtime();
  if (!ours || !connection->usable() || !idle_.add(index, connection, Clock::now())) {
    Connections refused;
    refused.push_back(std::move(connection));
    return close_all(std::move(refused));
  }
  publish(index);
  arm_expiry();
}

}  // namespace portrelay::relay
