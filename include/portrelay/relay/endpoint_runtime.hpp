#pragma once
// What the relay needs at run time for one chain endpoint: its configuration plus the
// resources built from it once per config snapshot (TLS context, resolved password).
#include <memory>
#include <string>
#include <vector>

#include "portrelay/config/config.hpp"
#include "portrelay/tls/context.hpp"

namespace portrelay::relay {

struct EndpointRuntime {
  config::Endpoint endpoint;
  std::shared_ptr<tls::Context> tls_context;  // null for tls = "none"
  std::string password;                       // resolved from env/file/inline; never logged
  std::string password_problem;               // why no password could be resolved, if so
};

struct UpstreamTimeouts {
  config::Duration connect;  // TCP phase of one endpoint, all its addresses together
  config::Duration address_stagger = std::chrono::milliseconds(250);  // next address after
  config::Duration greeting;
  config::Duration command;
  config::Duration data;
};

// Builds the runtime view of the chain. Throws tls::TlsError for unusable TLS settings.
std::vector<EndpointRuntime> build_endpoint_runtimes(const config::Config& config);
UpstreamTimeouts timeouts_from(const config::RelayConfig& relay);

}  // namespace portrelay::relay
