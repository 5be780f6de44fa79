#pragma once
// `portrelay run` raises its soft RLIMIT_NOFILE. A client session can hold two sockets
// (the client's and an upstream's), so the default max_sessions (1000) needs about 2,000
// descriptors, while the soft limit a shell or container gives is often 1,024: past it,
// accept() fails with EMFILE and clients are dropped before any greeting, whatever the
// session limits say. The systemd unit sets LimitNOFILE; this covers everything else.
#include <cstdint>

#include "portrelay/config/config.hpp"

namespace portrelay {

// Descriptors a relay running `config` may hold at once: two per client session, the
// idle upstream pool (one per loop, [server] workers), two per background delivery
// (connection and queued file), and room for listeners, spool, metrics, logs and each
// worker loop's own descriptors.
std::uint64_t descriptors_needed(const config::Config& config);

struct DescriptorLimit {
  std::uint64_t before = 0;  // the soft limit found
  std::uint64_t soft = 0;    // the soft limit now
  std::uint64_t hard = 0;
};

// Raises the soft limit to max(needed, 65536) (what the systemd unit sets), or to the
// hard limit if that is lower. Never lowers it.
DescriptorLimit raise_descriptor_limit(std::uint64_t needed);

}  // namespace portrelay
