#pragma once
// When two chain endpoints, from two configuration snapshots, are "the same upstream" and
// whether they are reached "the same way". The one definition of both: the health table,
// the reload's inheritance of health and the reload's log line use these.
//
// Identity: the host, port and TLS mode a connection goes to. Its position in one chain is
// not part of it, so health memory survives a reload that reorders, adds or removes
// endpoints.
#include <compare>
#include <cstdint>
#include <string>

#include "portrelay/base/tls_mode.hpp"
#include "portrelay/config/config.hpp"

namespace portrelay::relay {

struct EndpointIdentity {
  std::string host;
  std::uint16_t port = 0;
  TlsMode tls = TlsMode::StartTls;

  auto operator<=>(const EndpointIdentity&) const = default;
  bool operator==(const EndpointIdentity&) const = default;
};

EndpointIdentity identity_of(const config::Endpoint& endpoint);

// Same way of connecting and logging in, as configured: pinned addresses, TLS verification
// (CA file, server name, skip-verify) and every credential setting, the OAuth token's
// sources and lifetime included. Identity, name and position are not compared. An endpoint
// whose settings differ starts a reload with fresh health: the change may be the fix for
// what made it fail. (EndpointRuntime's overload adds the password as resolved, which a
// file's new content can change under the same settings.)
bool same_connection_settings(const config::Endpoint& a, const config::Endpoint& b);

}  // namespace portrelay::relay
