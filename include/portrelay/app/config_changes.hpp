#pragma once
// What a reload would change, compared between the running configuration and the new
// one. Pure: the daemon uses it to refuse what only a restart can do and to log what
// the reload changed.
#include <optional>
#include <string>
#include <vector>

#include "portrelay/config/config.hpp"

namespace portrelay {

// Why `next` cannot be applied without a restart (the listening sockets of the
// submission server and the metrics endpoint are bound once, at start), or nullopt.
std::optional<std::string> restart_required(const config::Config& running,
                                            const config::Config& next);

// How the chain changed, by endpoint identity (host, port, TLS mode; relay::identity_of).
struct ChainChanges {
  std::size_t endpoints = 0;  // in the new chain
  std::size_t added = 0;      // identities not in the running chain
  std::size_t removed = 0;    // identities no longer in the chain
  std::size_t changed = 0;    // same identity, other name or relay::same_connection_settings
  std::size_t unchanged = 0;
  bool reordered = false;  // the identities both chains have are in another order
};
ChainChanges compare_chains(const std::vector<config::Endpoint>& running,
                            const std::vector<config::Endpoint>& next);

}  // namespace portrelay
