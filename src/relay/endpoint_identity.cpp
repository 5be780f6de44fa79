#include "portrelay/relay/endpoint_identity.hpp"

namespace portrelay::relay {

EndpointIdentity identity_of(const config::Endpoint& endpoint) {
  return {endpoint.host, endpoint.port, endpoint.tls};
}

bool same_connection_settings(const config::Endpoint& a, const config::Endpoint& b) {
  const auto& x = a.credentials;
  const auto& y = b.credentials;
  return a.addresses == b.addresses && a.ca_file == b.ca_file &&
         a.tls_server_name == b.tls_server_name &&
         a.tls_insecure_skip_verify == b.tls_insecure_skip_verify &&
         a.tls_client_cert == b.tls_client_cert && a.tls_client_key == b.tls_client_key &&
         x.username == y.username && x.password == y.password && x.password_env == y.password_env &&
         x.password_file == y.password_file &&
         x.password_from_env_file == y.password_from_env_file && x.auth == y.auth &&
         x.oauth_token_file == y.oauth_token_file &&
         x.oauth_token_command == y.oauth_token_command &&
         x.oauth_token_lifetime == y.oauth_token_lifetime;
}

}  // namespace portrelay::relay
