#include "portrelay/relay/endpoint_runtime.hpp"

#include <cstdlib>
#include <fstream>

namespace portrelay::relay {
namespace {

void resolve_password(EndpointRuntime& runtime) {
  const auto& credentials = runtime.endpoint.credentials;
  if (!credentials.configured()) return;
  if (credentials.oauth()) {
    // Read lazily, at the first connection: a command may be slow or not ready at start.
    runtime.oauth_token = std::make_shared<OAuthTokenSource>(credentials);
  } else if (!credentials.password.empty()) {
    runtime.password = credentials.password;
  } else if (!credentials.password_from_env_file.empty()) {
    runtime.password = credentials.password_from_env_file;
  } else if (!credentials.password_env.empty()) {
    const char* value = std::getenv(credentials.password_env.c_str());
    if (value && *value)
      runtime.password = value;
    else
      runtime.password_problem = "environment variable " + credentials.password_env + " is not set";
  } else if (!credentials.password_file.empty()) {
    std::ifstream file(credentials.password_file);
    std::string line;
    if (file && std::getline(file, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      runtime.password = line;
    } else {
      runtime.password_problem = "cannot read password_file " + credentials.password_file;
    }
  }
}

}  // namespace

std::vector<EndpointRuntimePtr> build_endpoint_runtimes(const config::Config& config) {
  std::vector<EndpointRuntimePtr> runtimes;
  std::shared_ptr<const config::IdentityRewriter> rewriter;
  for (const auto& upstream : config.upstreams)
    if (upstream.identity.configured() && !rewriter)
      rewriter =
          std::make_shared<const config::IdentityRewriter>(config, config::mail_domain(config));
  for (const auto& endpoint : config.chain) {
    EndpointRuntime runtime;
    runtime.endpoint = endpoint;
    if (endpoint.upstream < config.upstreams.size() &&
        config.upstreams[endpoint.upstream].identity.configured()) {
      runtime.identity = config.upstreams[endpoint.upstream].identity;
      runtime.rewriter = rewriter;
    }
    if (endpoint.tls != config::TlsMode::None) {
      tls::ClientOptions options;
      options.ca_file = endpoint.ca_file;
      options.verify_peer = !endpoint.tls_insecure_skip_verify;
      options.cert_file = endpoint.tls_client_cert;
      options.key_file = endpoint.tls_client_key;
      runtime.tls_context = tls::Context::client(options);
    }
    resolve_password(runtime);
    runtimes.push_back(std::make_shared<const EndpointRuntime>(std::move(runtime)));
  }
  return runtimes;
}

bool same_connection_settings(const EndpointRuntime& a, const EndpointRuntime& b) {
  return same_connection_settings(a.endpoint, b.endpoint) && a.password == b.password;
}

UpstreamTimeouts timeouts_from(const config::RelayConfig& relay) {
  UpstreamTimeouts timeouts;
  timeouts.resolve = relay.resolve_timeout;
  timeouts.connect = relay.connect_timeout;
  timeouts.address_stagger = relay.stagger;
  timeouts.greeting = relay.greeting_timeout;
  timeouts.handshake = relay.handshake_timeout;
  timeouts.command = relay.command_timeout;
  timeouts.data = relay.data_timeout;
  timeouts.pool_check = relay.pool_check_timeout;
  timeouts.pool_check_after = relay.pool_check_after;
  return timeouts;
}

}  // namespace portrelay::relay
