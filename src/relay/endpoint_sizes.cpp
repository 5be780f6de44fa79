#include "portrelay/relay/endpoint_sizes.hpp"

#include <algorithm>
#include <utility>

namespace portrelay::relay {

EndpointSizes::EndpointSizes(std::vector<EndpointIdentity> chain)
    : chain_(std::move(chain)), configured_(chain_.size(), 0) {}

void EndpointSizes::configured(std::size_t index, std::uint64_t limit) {
  configured_.at(index) = limit;
}

void EndpointSizes::learned(std::size_t index, std::uint64_t limit) {
  limits_[chain_.at(index)] = limit;
}

std::optional<std::uint64_t> EndpointSizes::limit(std::size_t index) const {
  const std::uint64_t configured = configured_.at(index);
  auto found = limits_.find(chain_.at(index));
  if (found == limits_.end()) return configured != 0 ? std::optional(configured) : std::nullopt;
  if (configured == 0 || found->second == 0) return std::max(configured, found->second);
  return std::min(configured, found->second);
}

bool EndpointSizes::too_small(std::size_t index, std::uint64_t size) const {
  const auto known = limit(index);
  return known && *known != 0 && size > *known;
}

std::uint64_t EndpointSizes::largest(std::uint64_t bound) const {
  std::uint64_t largest = 0;
  for (std::size_t i = 0; i < chain_.size(); ++i) {
    const auto known = limit(i);
    const std::uint64_t accepts = (!known || *known == 0) ? bound : std::min(*known, bound);
    largest = std::max(largest, accepts);
  }
  return chain_.empty() ? bound : largest;
}

void EndpointSizes::inherit(const EndpointSizes& previous) {
  for (const auto& identity : chain_)
    if (auto found = previous.limits_.find(identity); found != previous.limits_.end())
      limits_.insert(*found);
}

}  // namespace portrelay::relay
