#include "portrelay/relay/upstream_pool.hpp"

namespace portrelay::relay {

UpstreamPool::UpstreamPool(net::Loop& loop, std::size_t endpoints, std::size_t max_per_endpoint,
                           config::Duration idle_timeout, metrics::Metrics& metrics)
    : loop_(loop),
      max_per_endpoint_(max_per_endpoint),
      idle_timeout_(idle_timeout),
      metrics_(metrics),
      idle_(endpoints) {}

UpstreamPool::~UpstreamPool() { clear(); }

void UpstreamPool::clear() {
  for (std::size_t index = 0; index < idle_.size(); ++index) {
    for (auto& entry : idle_[index]) {
      entry.connection->quit();
      loop_.defer_delete(std::move(entry.connection));
    }
    idle_[index].clear();
    publish(index);
  }
}

void UpstreamPool::publish(std::size_t endpoint_index) {
  metrics_.pool_idle(endpoint_index, idle_[endpoint_index].size());
}

std::unique_ptr<UpstreamConnection> UpstreamPool::take(std::size_t endpoint_index) {
  auto& queue = idle_.at(endpoint_index);
  while (!queue.empty()) {
    Idle entry = std::move(queue.back());
    queue.pop_back();
    if (entry.connection->usable()) {
      publish(endpoint_index);
      return std::move(entry.connection);
    }
  }
  publish(endpoint_index);
  return nullptr;
}

void UpstreamPool::give(std::unique_ptr<UpstreamConnection> connection) {
  if (!connection) return;
  std::size_t index = connection->endpoint().index;
  auto& queue = idle_.at(index);
  if (!connection->usable() || connection->busy() || queue.size() >= max_per_endpoint_) {
    // QUIT goes out now; the object may be inside one of its callbacks: free it later.
    connection->quit();
    loop_.defer_delete(std::move(connection));
    return;
  }
  Idle entry{std::move(connection), std::make_unique<net::Timer>(loop_.uv())};
  UpstreamConnection* raw = entry.connection.get();
  entry.expiry->start(idle_timeout_, [this, index, raw]() {
    auto& queue = idle_[index];
    for (auto it = queue.begin(); it != queue.end(); ++it) {
      if (it->connection.get() != raw) continue;
      it->connection->quit();
      loop_.defer_delete(std::move(it->connection));
      // Erasing the entry destroys the timer running this callback; UvHandle makes that safe.
      queue.erase(it);
      break;
    }
    publish(index);
  });
  queue.push_back(std::move(entry));
  publish(index);
}

}  // namespace portrelay::relay
