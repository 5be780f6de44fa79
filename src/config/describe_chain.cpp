// Human-readable failover chain for `portrelay check`. Never prints a secret value.
#include <algorithm>
#include <string>
#include <vector>

#include "portrelay/config/config.hpp"

namespace portrelay::config {
namespace {

std::string describe_auth(const Credentials& credentials) {
  if (!credentials.configured()) return "(no auth)";
  std::string text = credentials.username + " ";
  if (credentials.oauth()) {
    // Where the token comes from, never the token.
    text +=
        std::string("(") + sasl_name(credentials.auth) + ", token " +
        (credentials.oauth_token_file.empty() ? "from command " + credentials.oauth_token_command
                                              : "file " + credentials.oauth_token_file) +
        ", re-read after " + format_duration(credentials.oauth_token_lifetime) +
        " or when refused)";
  } else if (!credentials.password_from_env_file.empty()) {
    text += "(password from env_file " + credentials.password_env + ")";
  } else if (!credentials.password_env.empty()) {
    text += "(password from env " + credentials.password_env + ")";
  } else if (!credentials.password_file.empty()) {
    text += "(password file " + credentials.password_file + ")";
  } else {
    text += "(inline password)";
  }
  return text;
}

std::vector<std::string> describe_endpoint(const Endpoint& endpoint) {
  std::string extras;
  if (!endpoint.tls_server_name.empty()) extras += "  tls_server_name=" + endpoint.tls_server_name;
  if (!endpoint.addresses.empty()) {
    extras += "  addresses=";
    for (std::size_t i = 0; i < endpoint.addresses.size(); ++i)
      extras += (i ? "," : "") + endpoint.addresses[i];
  }
  if (!endpoint.ca_file.empty()) extras += "  ca_file=" + endpoint.ca_file;
  if (endpoint.tls_insecure_skip_verify) extras += "  verify=OFF";
  if (!endpoint.tls_client_cert.empty()) extras += "  client_cert=" + endpoint.tls_client_cert;
  if (!endpoint.provider.empty()) extras += "  provider=" + endpoint.provider;
  return {std::to_string(endpoint.index + 1), endpoint.host + ":" + std::to_string(endpoint.port),
          std::string("tls=") + to_string(endpoint.tls), "name=" + endpoint.name,
          "auth=" + describe_auth(endpoint.credentials) + extras};
}

}  // namespace

std::string describe_chain(const Config& config) {
  std::vector<std::vector<std::string>> rows;
  for (const Endpoint& endpoint : config.chain) rows.push_back(describe_endpoint(endpoint));

  // Pad every column but the last to its widest cell so the chain reads as a table.
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string text = "upstream chain (" + std::to_string(config.chain.size()) +
                     (config.chain.size() == 1 ? " endpoint" : " endpoints") +
                     ", in order of preference):\n";
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      text += row[i];
      if (i + 1 < row.size()) text += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    text += '\n';
  }
  return text;
}

std::string describe_routes(const Config& config) {
  if (config.routes.empty()) return {};
  auto chain_of = [&config](const std::vector<std::size_t>& endpoints) {
    std::string text;
    for (std::size_t index : endpoints) {
      if (!text.empty()) text += " -> ";
      text += config.chain[index].label();
    }
    return text;
  };
  std::string text = "routes (the first whose senders match the envelope sender):\n";
  for (const Route& route : config.routes) {
    std::string senders;
    for (const std::string& pattern : route.senders)
      senders += (senders.empty() ? "" : ",") + pattern;
    text += "  " + route.name + "  senders=" + senders +
            "\n    chain: " + chain_of(route.endpoints) + "\n";
  }
  text += "  " + std::string(kDefaultRouteName) + "  (every other sender)\n    ";
  text += config.relay.require_route
              ? std::string("refused at MAIL with 550 5.7.1 (relay.require_route)\n")
              : "chain: " + chain_of(default_route(config.chain.size()).endpoints) + "\n";
  return text;
}

}  // namespace portrelay::config
