#include "portrelay/relay/endpoint_identity.hpp"

namespace portrelay::relay {

EndpointIdentity identity_of(const config::Endpoint& endpoint) {
  return {endpoint.host, endpoint.port, endpoint.tls};
}

}  // namespace portrelay::relay
