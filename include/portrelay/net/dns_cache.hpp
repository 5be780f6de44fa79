#pragma once
// Remembers successful name resolutions for a bounded time, process-wide (every loop).
//
// getaddrinfo does not report the DNS TTL, so entries live for a fixed `lifetime` (60 s by
// default): short enough to follow a provider's DNS changes within a minute, long enough
// that a burst of messages resolves a host once instead of queueing one getaddrinfo per
// connection attempt on libuv's thread pool. Failures are not cached, so a host that comes
// back is found at once. At most `max_entries` names are kept (the entry closest to expiry
// is dropped first). Thread-safe.
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace portrelay::net {

class DnsCache {
 public:
  using Clock = std::chrono::steady_clock;

  explicit DnsCache(Clock::duration lifetime = std::chrono::seconds(60),
                    std::size_t max_entries = 256)
      : lifetime_(lifetime), max_entries_(max_entries) {}

  // The one the resolver uses.
  static DnsCache& shared();

  std::optional<std::vector<sockaddr_storage>> find(const std::string& host, std::uint16_t port,
                                                    Clock::time_point now);
  void store(const std::string& host, std::uint16_t port, std::vector<sockaddr_storage> addresses,
             Clock::time_point now);
  void clear();
  std::size_t size() const;

 private:
  struct Entry {
    std::vector<sockaddr_storage> addresses;
    Clock::time_point expires;
  };
  using Key = std::pair<std::string, std::uint16_t>;

  Clock::duration lifetime_;
  std::size_t max_entries_;
  mutable std::mutex mutex_;
  std::map<Key, Entry> entries_;
};

}  // namespace portrelay::net
