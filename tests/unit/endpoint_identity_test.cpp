// The one definition of "the same upstream" (identity_of) and "reached the same way"
// (same_connection_settings), which the health table's inheritance and the reload's log
// line both use. Each connection or credential setting, the OAuth ones included, makes an
// endpoint "changed"; name and position do not change how it is reached.
#include "portrelay/relay/endpoint_identity.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "portrelay/app/config_changes.hpp"
#include "portrelay/relay/endpoint_runtime.hpp"

namespace portrelay::relay {
namespace {

using namespace std::chrono_literals;

config::Endpoint oauth_endpoint() {
  config::Endpoint endpoint;
  endpoint.name = "gmail";
  endpoint.host = "smtp.gmail.com";
  endpoint.port = 587;
  endpoint.tls = TlsMode::StartTls;
  endpoint.credentials.username = "u@gmail.com";
  endpoint.credentials.auth = UpstreamAuth::XOAuth2;
  endpoint.credentials.oauth_token_command = "/usr/bin/oauth2l fetch --account u";
  return endpoint;
}

TEST(EndpointIdentity, HostPortAndTlsModeOnly) {
  const config::Endpoint a = oauth_endpoint();
  config::Endpoint b = a;
  b.index = 3;
  b.name = "renamed";
  b.credentials.oauth_token_command = "/bin/other";
  EXPECT_EQ(identity_of(a), identity_of(b));
  b = a;
  b.port = 465;
  EXPECT_NE(identity_of(a), identity_of(b));
  b = a;
  b.tls = TlsMode::Implicit;
  EXPECT_NE(identity_of(a), identity_of(b));
  b = a;
  b.host = "smtp-relay.gmail.com";
  EXPECT_NE(identity_of(a), identity_of(b));
}

TEST(EndpointIdentity, EveryConnectionAndCredentialSettingCountsTheOAuthOnesIncluded) {
  const config::Endpoint base = oauth_endpoint();
  const std::vector<std::pair<std::string, std::function<void(config::Endpoint&)>>> changes = {
      {"addresses", [](config::Endpoint& e) { e.addresses = {"192.0.2.1"}; }},
      {"ca_file", [](config::Endpoint& e) { e.ca_file = "/etc/ca.pem"; }},
      {"tls_server_name", [](config::Endpoint& e) { e.tls_server_name = "gmail.test"; }},
      {"tls_insecure_skip_verify", [](config::Endpoint& e) { e.tls_insecure_skip_verify = true; }},
      {"username", [](config::Endpoint& e) { e.credentials.username = "v@gmail.com"; }},
      {"password", [](config::Endpoint& e) { e.credentials.password = "p"; }},
      {"password_env", [](config::Endpoint& e) { e.credentials.password_env = "PW"; }},
      {"password_file", [](config::Endpoint& e) { e.credentials.password_file = "/pw"; }},
      {"password_from_env_file",
       [](config::Endpoint& e) { e.credentials.password_from_env_file = "p"; }},
      {"auth", [](config::Endpoint& e) { e.credentials.auth = UpstreamAuth::OAuthBearer; }},
      {"oauth_token_file", [](config::Endpoint& e) { e.credentials.oauth_token_file = "/t"; }},
      {"oauth_token_command",
       [](config::Endpoint& e) { e.credentials.oauth_token_command = "/usr/bin/oauth2l fetch"; }},
      {"oauth_token_lifetime",
       [](config::Endpoint& e) { e.credentials.oauth_token_lifetime = 90s; }},
  };
  EXPECT_TRUE(same_connection_settings(base, base));
  for (const auto& [setting, change] : changes) {
    config::Endpoint changed = base;
    change(changed);
    EXPECT_FALSE(same_connection_settings(base, changed)) << setting;
    EXPECT_FALSE(same_connection_settings(changed, base)) << setting;
  }
  config::Endpoint moved = base;
  moved.index = 2;
  moved.name = "renamed";
  moved.source_line = 40;
  EXPECT_TRUE(same_connection_settings(base, moved)) << "name and position are not settings";
}

config::Config parse(const std::string& upstream_lines) {
  return config::parse_config(
      "[server]\n[metrics]\nenabled = false\n[[upstream]]\nname = \"g\"\n"
      "host = \"smtp.gmail.com\"\nport = 587\n"
      "username = \"u@gmail.com\"\nauth = \"xoauth2\"\n" +
          upstream_lines,
      "t.toml");
}

// A reload that changes only the token command: the new runtime is not "the same" as the
// running one, so the reload gives it fresh health (RacingSelector::inherit_health), and the
// reload's log line counts it as changed. Before one definition, the log's copy ignored the
// OAuth fields and counted it unchanged.
TEST(EndpointIdentity, ReloadChangingOnlyTheOAuthTokenCommandGivesAFreshEndpoint) {
  const config::Config running = parse("oauth_token_command = \"/bin/echo first-token\"\n");
  const config::Config next = parse("oauth_token_command = \"/bin/echo second-token\"\n");
  const auto old_runtimes = build_endpoint_runtimes(running);
  const auto new_runtimes = build_endpoint_runtimes(next);
  ASSERT_EQ(old_runtimes.size(), 1u);
  ASSERT_EQ(new_runtimes.size(), 1u);
  EXPECT_EQ(identity_of(old_runtimes[0]->endpoint), identity_of(new_runtimes[0]->endpoint));
  EXPECT_FALSE(same_connection_settings(*old_runtimes[0], *new_runtimes[0]));
  EXPECT_TRUE(same_connection_settings(*old_runtimes[0], *build_endpoint_runtimes(running)[0]));

  const auto changes = compare_chains(running.chain, next.chain);
  EXPECT_EQ(changes.changed, 1u);
  EXPECT_EQ(changes.unchanged, 0u);
  EXPECT_EQ(compare_chains(running.chain, running.chain).unchanged, 1u);
}

}  // namespace
}  // namespace portrelay::relay
