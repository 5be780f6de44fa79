// [[upstream]] tables -> the ordered failover chain, one Endpoint per (upstream, port).
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "portrelay/net/tcp_listener.hpp"
#include "sections.hpp"
#include "value_checks.hpp"

namespace portrelay::config::detail {
namespace {

constexpr int kImplicitTlsPort = 465;  // RFC 8314 submissions port

struct Port {
  std::uint16_t number;
  const toml::node* node;
};

std::uint16_t checked_port(const TableReader& reader, std::string_view key,
                           const toml::node& node) {
  if (!node.is_integer()) {
    reader.fail(key, node, "expected an integer, got " + std::string(type_name(node)));
  }
  const std::int64_t value = node.as_integer()->get();
  if (value < 1 || value > 65535) {
    reader.fail(key, node, std::to_string(value) + " is not a port (must be between 1 and 65535)");
  }
  return static_cast<std::uint16_t>(value);
}

std::vector<Port> read_ports(const TableReader& reader) {
  const toml::node* port = reader.find("port");
  const toml::node* ports = reader.find("ports");
  if (port != nullptr && ports != nullptr) {
    reader.fail("ports", *ports, "set either port or ports, not both");
  }
  if (port != nullptr) return {{checked_port(reader, "port", *port), port}};
  if (ports == nullptr) {
    reader.fail_table("upstream.port: missing (set port = 587 or ports = [587, 465, 2525])");
  }
  if (!ports->is_array()) {
    reader.fail("ports", *ports,
                "expected an array of integers, got " + std::string(type_name(*ports)));
  }
  if (ports->as_array()->empty()) reader.fail("ports", *ports, "lists no port");
  std::vector<Port> result;
  for (const toml::node& element : *ports->as_array()) {
    const std::uint16_t number = checked_port(reader, "ports", element);
    for (const Port& earlier : result) {
      if (earlier.number == number) {
        reader.fail("ports", element, "port " + std::to_string(number) + " is listed twice");
      }
    }
    result.push_back({number, &element});
  }
  return result;
}

std::optional<TlsMode> read_tls_mode(const TableReader& reader) {
  const auto text = reader.string("tls");
  if (!text) return std::nullopt;
  for (TlsMode mode :
       {TlsMode::Implicit, TlsMode::StartTls, TlsMode::Opportunistic, TlsMode::None}) {
    if (*text == to_string(mode)) return mode;
  }
  reader.fail("tls", *reader.find("tls"),
              "\"" + *text +
                  "\" is not a TLS mode (use \"implicit\", \"starttls\", \"opportunistic\" or "
                  "\"none\")");
}

// The program of an oauth_token_command: a path is checked now, a bare name is looked up
// in PATH when the command runs.
void check_token_command(const TableReader& reader, const std::string& command) {
  const toml::node& at = *reader.find("oauth_token_command");
  const std::size_t start = command.find_first_not_of(' ');
  if (start == std::string::npos) reader.fail("oauth_token_command", at, "is empty");
  const std::string program = command.substr(start, command.find(' ', start) - start);
  if (program.find('/') == std::string::npos) return;
  if (::access(program.c_str(), X_OK) != 0) {
    reader.fail("oauth_token_command", at,
                "\"" + program + "\" is not an executable file: " + std::strerror(errno));
  }
}

// auth = "xoauth2" | "oauthbearer": a username and exactly one token source.
Credentials read_oauth_credentials(const TableReader& reader, UpstreamAuth auth) {
  const toml::node& auth_node = *reader.find("auth");
  for (std::string_view key : {"password_env", "password_file", "password"}) {
    if (const toml::node* node = reader.find(key)) {
      reader.fail(key, *node,
                  "is for PLAIN/LOGIN; auth = \"" + std::string(to_string(auth)) +
                      "\" takes oauth_token_file or oauth_token_command");
    }
  }
  const auto username = reader.string("username");
  if (!username || username->empty()) {
    reader.fail("auth", auth_node,
                "\"" + std::string(to_string(auth)) +
                    "\" needs upstream.username (the mailbox the token was issued for)");
  }
  const auto token_file = reader.string("oauth_token_file");
  const auto token_command = reader.string("oauth_token_command");
  if (token_file && token_command) {
    reader.fail("oauth_token_command", *reader.find("oauth_token_command"),
                "set either oauth_token_file or oauth_token_command, not both");
  }
  if (!token_file && !token_command) {
    reader.fail("auth", auth_node,
                "\"" + std::string(to_string(auth)) +
                    "\" needs a token source (set oauth_token_file or oauth_token_command)");
  }
  Credentials credentials;
  credentials.username = *username;
  credentials.auth = auth;
  if (token_file) {
    const toml::node& at = *reader.find("oauth_token_file");
    if (auto reason = unreadable_reason(*token_file)) {
      reader.fail("oauth_token_file", at, "cannot read \"" + *token_file + "\": " + *reason);
    }
    if (readable_by_group_or_others(*token_file)) {
      reader.warn(
          "oauth_token_file", at,
          "\"" + *token_file + "\" is readable by group or others; restrict it (chmod 600)");
    }
    credentials.oauth_token_file = *token_file;
  } else {
    check_token_command(reader, *token_command);
    credentials.oauth_token_command = *token_command;
  }
  if (reader.has("oauth_token_lifetime")) {
    credentials.oauth_token_lifetime =
        reader.timeout("oauth_token_lifetime", credentials.oauth_token_lifetime);
  }
  return credentials;
}

// Secrets are never echoed: messages name keys, file paths and variable names only.
Credentials read_credentials(const TableReader& reader) {
  if (const auto auth_text = reader.string("auth")) {
    const auto auth = parse_upstream_auth(*auth_text);
    if (!auth) {
      reader.fail("auth", *reader.find("auth"),
                  "\"" + *auth_text +
                      "\" is not an upstream auth mechanism (use \"xoauth2\", \"oauthbearer\" "
                      "or \"password\", the default: PLAIN or LOGIN)");
    }
    if (*auth != UpstreamAuth::Password) return read_oauth_credentials(reader, *auth);
  }
  for (std::string_view key : {"oauth_token_file", "oauth_token_command", "oauth_token_lifetime"}) {
    if (const toml::node* node = reader.find(key)) {
      reader.fail(key, *node, "is set but upstream.auth is not \"xoauth2\" or \"oauthbearer\"");
    }
  }
  Credentials credentials;
  const auto username = reader.string("username");
  const auto password_env = reader.string("password_env");
  const auto password_file = reader.string("password_file");
  const auto password = reader.string("password");

  const toml::node* source = nullptr;
  for (std::string_view key : {"password_env", "password_file", "password"}) {
    const toml::node* node = reader.find(key);
    if (node == nullptr) continue;
    if (source != nullptr) {
      reader.fail(key, *node, "set only one of password_env, password_file and password");
    }
    source = node;
  }
  if (source != nullptr && !username) {
    const std::string_view key = password_env    ? "password_env"
                                 : password_file ? "password_file"
                                                 : "password";
    reader.fail(key, *source, "is set but upstream.username is not");
  }
  if (!username) return credentials;

  const toml::node& username_node = *reader.find("username");
  if (username->empty()) reader.fail("username", username_node, "is empty");
  if (source == nullptr) {
    reader.fail("username", username_node,
                "has no password (set password_env, password_file or password)");
  }
  credentials.username = *username;

  if (password_env) {
    const toml::node& at = *reader.find("password_env");
    if (!is_valid_env_name(*password_env)) {
      reader.fail("password_env", at,
                  "\"" + *password_env + "\" is not an environment variable name");
    }
    // Only a warning: `check` may run in a shell that lacks the service's environment.
    if (std::getenv(password_env->c_str()) == nullptr) {
      reader.warn("password_env", at, "environment variable " + *password_env + " is not set");
    }
    credentials.password_env = *password_env;
  } else if (password_file) {
    const toml::node& at = *reader.find("password_file");
    if (auto reason = unreadable_reason(*password_file)) {
      reader.fail("password_file", at, "cannot read \"" + *password_file + "\": " + *reason);
    }
    if (readable_by_group_or_others(*password_file)) {
      reader.warn(
          "password_file", at,
          "\"" + *password_file + "\" is readable by group or others; restrict it (chmod 600)");
    }
    credentials.password_file = *password_file;
  } else {
    const toml::node& at = *reader.find("password");
    if (password->empty()) reader.fail("password", at, "is empty");
    reader.warn("password", at,
                "inline password in config file; prefer password_env or password_file");
    credentials.password = *password;
  }
  return credentials;
}

// Plaintext toward the Internet: "none" sends every message in clear, and "opportunistic"
// falls back to clear when STARTTLS is not offered, which anyone on the path can arrange by
// removing it from the EHLO reply. Fine on loopback (a local MTA or a tunnel's end);
// elsewhere `check` says so. Pinned `addresses` decide where the relay really connects.
void warn_if_tls_can_be_avoided(const TableReader& reader, const Endpoint& endpoint,
                                std::optional<TlsMode> tls) {
  if (tls != TlsMode::None && tls != TlsMode::Opportunistic) return;
  bool loopback = endpoint.addresses.empty() ? is_loopback_host(endpoint.host) : true;
  for (const std::string& address : endpoint.addresses)
    if (!is_loopback_host(address)) loopback = false;
  if (loopback) return;
  reader.warn("tls", *reader.find("tls"),
              tls == TlsMode::None
                  ? "\"none\" toward " + endpoint.host +
                        ", which is not a loopback address: every message crosses the network "
                        "in clear text (use \"starttls\" or \"implicit\")"
                  : "\"opportunistic\" toward " + endpoint.host +
                        ", which is not a loopback address: anyone on the path can remove "
                        "STARTTLS from the EHLO reply and read the mail (use \"starttls\" or "
                        "\"implicit\")");
}

std::vector<Endpoint> parse_upstream(ParseContext& context, const toml::table& table) {
  const TableReader reader(
      context, table, "upstream", "[[upstream]]",
      {"host", "port", "ports", "tls", "name", "ca_file", "tls_server_name",
       "tls_insecure_skip_verify", "username", "password_env", "password_file", "password",
       "addresses", "auth", "oauth_token_file", "oauth_token_command", "oauth_token_lifetime"});

  const auto host = reader.string("host");
  if (!host) reader.fail_table("upstream.host: missing (every [[upstream]] needs a host)");
  if (!is_valid_host(*host)) {
    reader.fail("host", *reader.find("host"),
                "\"" + *host + "\" is not a valid host name or IP address");
  }
  const std::vector<Port> ports = read_ports(reader);
  const std::optional<TlsMode> tls = read_tls_mode(reader);

  Endpoint common;
  common.host = *host;
  common.name = reader.string("name").value_or(*host);
  if (!is_valid_label(common.name)) {
    const std::string_view key = reader.has("name") ? "name" : "host";
    reader.fail(key, *reader.find(key),
                "\"" + common.name +
                    "\" is not usable as a metrics label (up to 64 of A-Z a-z 0-9 _ . : -); "
                    "set upstream.name");
  }
  if (const auto ca_file = reader.string("ca_file")) {
    if (auto reason = unreadable_reason(*ca_file)) {
      reader.fail("ca_file", *reader.find("ca_file"),
                  "cannot read \"" + *ca_file + "\": " + *reason);
    }
    common.ca_file = *ca_file;
  }
  if (const auto server_name = reader.string("tls_server_name")) {
    if (!is_valid_hostname(*server_name)) {
      reader.fail("tls_server_name", *reader.find("tls_server_name"),
                  "\"" + *server_name + "\" is not a valid hostname");
    }
    common.tls_server_name = *server_name;
  }
  if (const auto addresses = reader.string_array("addresses")) {
    for (const StringItem& item : *addresses) {
      sockaddr_storage parsed{};
      if (!net::make_sockaddr(item.value, 0, parsed)) {
        reader.fail(
            "addresses", *item.node,
            "\"" + item.value + "\" is not an IP address (\"192.0.2.10\" or \"2001:db8::1\")");
      }
      common.addresses.push_back(item.value);
    }
  }
  common.tls_insecure_skip_verify = reader.boolean("tls_insecure_skip_verify").value_or(false);
  if (common.tls_insecure_skip_verify) {
    reader.warn("tls_insecure_skip_verify", *reader.find("tls_insecure_skip_verify"),
                "certificates of " + common.host +
                    " are not verified; anyone on the path can read the mail and credentials");
  }
  common.credentials = read_credentials(reader);
  if (tls == TlsMode::None && common.credentials.configured()) {
    reader.fail("tls", *reader.find("tls"),
                "\"none\" with username set: credentials would travel in clear text (use "
                "\"starttls\" or \"implicit\")");
  }
  warn_if_tls_can_be_avoided(reader, common, tls);
  common.source_line = static_cast<int>(table.source().begin.line);

  std::vector<Endpoint> endpoints;
  for (const Port& port : ports) {
    Endpoint endpoint = common;
    endpoint.port = port.number;
    endpoint.tls =
        tls.value_or(port.number == kImplicitTlsPort ? TlsMode::Implicit : TlsMode::StartTls);
    endpoints.push_back(std::move(endpoint));
  }
  return endpoints;
}

}  // namespace

std::vector<Endpoint> parse_upstream_chain(ParseContext& context, const toml::node* node) {
  if (node == nullptr) {
    throw ConfigError(context.source(), 0, 0,
                      "no [[upstream]] configured (at least one is required)");
  }
  if (node->is_table()) {
    throw context.error(node->source(),
                        "upstream: write [[upstream]] (an array of tables), not [upstream]");
  }
  if (!node->is_array_of_tables() || node->as_array()->empty()) {
    throw context.error(node->source(), "upstream: expected [[upstream]] tables, got " +
                                            std::string(type_name(*node)));
  }
  std::vector<Endpoint> chain;
  // Metrics are labelled {upstream=name, port}: two endpoints with one label would be merged.
  std::map<std::string, int> line_by_label;
  for (const toml::node& element : *node->as_array()) {
    for (Endpoint& endpoint : parse_upstream(context, *element.as_table())) {
      const auto [earlier, inserted] =
          line_by_label.emplace(endpoint.label(), endpoint.source_line);
      if (!inserted) {
        throw context.error(element.source(),
                            "upstream: endpoint " + endpoint.label() +
                                " is already defined by the [[upstream]] at line " +
                                std::to_string(earlier->second) +
                                "; give one of them a different name");
      }
      endpoint.index = chain.size();
      chain.push_back(std::move(endpoint));
    }
  }
  return chain;
}

}  // namespace portrelay::config::detail
