#pragma once
// What the relay needs at run time for one chain endpoint: its configuration plus the
// resources built from it once per config snapshot (TLS context, resolved password).
#include <memory>
#include <string>
#include <vector>

#include "portrelay/config/config.hpp"
#include "portrelay/config/identity_rewriter.hpp"
#include "portrelay/relay/endpoint_identity.hpp"
#include "portrelay/relay/oauth_token_source.hpp"
#include "portrelay/tls/context.hpp"

namespace portrelay::relay {

struct EndpointRuntime {
  config::Endpoint endpoint;
  std::shared_ptr<tls::Context> tls_context;  // null for tls = "none"
  std::string password;                       // resolved from env/file/inline; never logged
  std::string password_problem;               // why no password could be resolved, if so
  // XOAUTH2 / OAUTHBEARER only: the token cache, shared (and updated) by all connections.
  std::shared_ptr<OAuthTokenSource> oauth_token;
  // The account's identity ([[upstream]] sender/from/all_senders) and the rules that
  // apply it; `rewriter` is null when the account has none (then nothing is looked at).
  config::SenderIdentity identity;
  std::shared_ptr<const config::IdentityRewriter> rewriter;
};

// What each wait of an upstream connection may last (RelayConfig's *_timeout keys).
struct UpstreamTimeouts {
  config::Duration resolve;  // DNS
  config::Duration connect;  // TCP phase of one endpoint, all its addresses together
  config::Duration address_stagger = std::chrono::milliseconds(250);  // next address after
  config::Duration greeting;                                          // the 220
  config::Duration handshake;   // TLS handshake; each EHLO/STARTTLS/AUTH reply
  config::Duration command;     // MAIL/RCPT/DATA replies; a body send stalled this long
  config::Duration data;        // the reply after the final dot
  config::Duration pool_check;  // RSET on a pooled connection before reuse
  // ... unless its server answered less than this ago (0: always)
  config::Duration pool_check_after = std::chrono::seconds(2);
};

// One endpoint's runtime, shared and never changed once built: connections, the
// selector and the pool hold it, so a configuration reload can build a new chain while
// connections made with the old one finish on it.
using EndpointRuntimePtr = std::shared_ptr<const EndpointRuntime>;

// Builds the runtime view of the chain. Throws tls::TlsError for unusable TLS settings.
std::vector<EndpointRuntimePtr> build_endpoint_runtimes(const config::Config& config);
UpstreamTimeouts timeouts_from(const config::RelayConfig& relay);
// The configured settings are the same (endpoint_identity.hpp) and so is the password as
// resolved now (a password file's or variable's new value under the same setting).
bool same_connection_settings(const EndpointRuntime& a, const EndpointRuntime& b);

}  // namespace portrelay::relay
