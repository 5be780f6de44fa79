#pragma once
// What makes two chain endpoints "the same upstream" across configuration snapshots: the
// host, port and TLS mode a connection goes to. Its position in one chain is not part of
// it, so health memory survives a reload that reorders, adds or removes endpoints.
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

}  // namespace portrelay::relay
