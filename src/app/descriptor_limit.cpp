#include "portrelay/app/descriptor_limit.hpp"

#include <sys/resource.h>

#include <algorithm>

namespace portrelay {
namespace {

constexpr std::uint64_t kRoom = 64;  // listeners, spool and control socket, metrics, logs
// Each worker loop beyond the first ([server] workers): its epoll and async descriptors.
constexpr std::uint64_t kPerWorkerLoop = 4;
constexpr std::uint64_t kComfortable = 65536;

std::uint64_t as_count(rlim_t value) {
  return value == RLIM_INFINITY ? UINT64_MAX : static_cast<std::uint64_t>(value);
}

}  // namespace

std::uint64_t descriptors_needed(const config::Config& config) {
  std::uint64_t needed = 2 * static_cast<std::uint64_t>(config.server.max_sessions) + kRoom;
  // A pool per loop; each worker loop also has its own socket on every listen address.
  // (Counted for the configured workers, also where the daemon runs fewer: a bound to aim
  // for, not an exact count.)
  const std::uint64_t loops = std::max<std::uint64_t>(config.server.workers, 1);
  needed +=
      loops * static_cast<std::uint64_t>(config.relay.pool_max_per_endpoint) * config.chain.size();
  const std::uint64_t listeners =
      config.server.listen.size() + config.server.listen_implicit_tls.size();
  needed += (loops - 1) * (kPerWorkerLoop + listeners);
  if (config.relay.uses_spool())
    needed += 2 * static_cast<std::uint64_t>(config.spool.max_deliveries);
  return needed;
}

DescriptorLimit raise_descriptor_limit(std::uint64_t needed) {
  DescriptorLimit result;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return result;
  result.before = result.soft = as_count(limit.rlim_cur);
  result.hard = as_count(limit.rlim_max);
  const std::uint64_t wanted = std::min(std::max(needed, kComfortable), result.hard);
  if (wanted <= result.soft) return result;
  limit.rlim_cur = static_cast<rlim_t>(wanted);
  // The kernel may refuse more than fs.nr_open even under a higher hard limit: keep what
  // we have then; the caller warns if it is not enough.
  if (setrlimit(RLIMIT_NOFILE, &limit) == 0) result.soft = wanted;
  return result;
}

}  // namespace portrelay
