#include "portrelay/net/dns_cache.hpp"

#include <algorithm>

namespace portrelay::net {

DnsCache& DnsCache::shared() {
  static DnsCache cache;
  return cache;
}

std::optional<std::vector<sockaddr_storage>> DnsCache::find(const std::string& host,
                                                            std::uint16_t port,
                                                            Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find({host, port});
  if (it == entries_.end()) return std::nullopt;
  if (now >= it->second.expires) {
    entries_.erase(it);
    return std::nullopt;
  }
  return it->second.addresses;
}

void DnsCache::store(const std::string& host, std::uint16_t port,
                     std::vector<sockaddr_storage> addresses, Clock::time_point now) {
  if (addresses.empty() || max_entries_ == 0) return;
  std::lock_guard lock(mutex_);
  if (entries_.size() >= max_entries_ && !entries_.count({host, port})) {
    std::erase_if(entries_, [&](const auto& entry) { return now >= entry.second.expires; });
    if (entries_.size() >= max_entries_) {
      entries_.erase(std::min_element(
          entries_.begin(), entries_.end(),
          [](const auto& a, const auto& b) { return a.second.expires < b.second.expires; }));
    }
  }
  entries_[{host, port}] = Entry{std::move(addresses), now + lifetime_};
}

void DnsCache::clear() {
  std::lock_guard lock(mutex_);
  entries_.clear();
}

std::size_t DnsCache::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace portrelay::net
