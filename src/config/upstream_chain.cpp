// [[upstream]] tables -> the ordered failover chain, one Endpoint per (upstream, port).
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "portrelay/base/ascii.hpp"
#include "portrelay/net/tcp_listener.hpp"
#include "provider_presets.hpp"
#include "sections.hpp"
#include "value_checks.hpp"

namespace portrelay::config::detail {
namespace {

constexpr int kImplicitTlsPort = 465;  // RFC 8314 submissions port

// One port of an [[upstream]] and the TLS mode it is used with. `tls_node` is where that
// mode was written (an inline table's `tls`, the table's `tls`), null when it came from a
// default or a preset: errors and warnings about the mode point there.
struct Port {
  std::uint16_t number;
  const toml::node* node;
  TlsMode tls;
  const toml::node* tls_node;
};

// A `tls` value as written, with where it was written.
struct TlsSetting {
  std::optional<TlsMode> mode;
  const toml::node* node = nullptr;
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

TlsSetting read_tls_mode(const TableReader& reader) {
  const auto text = reader.string("tls");
  if (!text) return {};
  for (TlsMode mode :
       {TlsMode::Implicit, TlsMode::StartTls, TlsMode::Opportunistic, TlsMode::None}) {
    if (*text == to_string(mode)) return {mode, reader.find("tls")};
  }
  reader.fail("tls", *reader.find("tls"),
              "\"" + *text +
                  "\" is not a TLS mode (use \"implicit\", \"starttls\", \"opportunistic\" or "
                  "\"none\")");
}

// The mode of a port written without its own `tls`: the table's `tls` if set, else what the
// provider preset documents for that port, else implicit TLS on 465 and STARTTLS elsewhere.
Port port_with_default_tls(std::uint16_t number, const toml::node* node,
                           const TlsSetting& table_tls, const ProviderPreset* preset) {
  if (table_tls.mode) return {number, node, *table_tls.mode, table_tls.node};
  if (preset != nullptr) {
    if (auto documented = preset_tls_for_port(*preset, number)) {
      return {number, node, *documented, nullptr};
    }
  }
  return {number, node, number == kImplicitTlsPort ? TlsMode::Implicit : TlsMode::StartTls,
          nullptr};
}

// 2465 is where SES and Resend speak TLS from the first byte, but as a plain number it gets
// STARTTLS by the 465-only rule: the relay would then wait for a greeting that never comes.
void warn_if_default_hides_implicit_tls(const TableReader& reader, std::string_view key,
                                        const Port& port) {
  if (port.number != 2465 || port.tls_node != nullptr || port.tls != TlsMode::StartTls) return;
  reader.warn(key, *port.node,
              "port 2465 is used with \"starttls\" (the default for any port but 465); "
              "providers that listen there speak implicit TLS: write { port = 2465, tls = "
              "\"implicit\" } if yours does");
}

// `{ port = 2465, tls = "implicit" }`: one element of `ports` with its own TLS mode.
Port read_port_entry(const TableReader& reader, const toml::node& element,
                     const TlsSetting& table_tls, const ProviderPreset* preset) {
  const TableReader entry(reader.context(), *element.as_table(), "upstream.ports",
                          "an upstream.ports entry", {"port", "tls"});
  const toml::node* port = entry.find("port");
  if (port == nullptr) {
    entry.fail_table(
        "upstream.ports: entry has no port (write { port = 2465, tls = "
        "\"implicit\" })");
  }
  const std::uint16_t number = checked_port(entry, "port", *port);
  const TlsSetting own_tls = read_tls_mode(entry);
  if (own_tls.mode) return {number, &element, *own_tls.mode, own_tls.node};
  return port_with_default_tls(number, &element, table_tls, preset);
}

std::vector<Port> read_ports(const TableReader& reader, const TlsSetting& table_tls,
                             const ProviderPreset* preset) {
  const toml::node* port = reader.find("port");
  const toml::node* ports = reader.find("ports");
  if (port != nullptr && ports != nullptr) {
    reader.fail("ports", *ports, "set either port or ports, not both");
  }
  if (port != nullptr) {
    const Port only =
        port_with_default_tls(checked_port(reader, "port", *port), port, table_tls, preset);
    warn_if_default_hides_implicit_tls(reader, "port", only);
    return {only};
  }
  if (ports == nullptr && preset != nullptr) {
    // The preset sets a mode per port, so a table-wide `tls` could only break some of them.
    if (table_tls.node != nullptr) {
      reader.fail("tls", *table_tls.node,
                  "provider \"" + std::string(preset->name) +
                      "\" sets the TLS mode of each of its ports; to change it, list the ports "
                      "too (ports = [587, { port = 2465, tls = \"implicit\" }])");
    }
    const toml::node* provider = reader.find("provider");
    std::vector<Port> result;
    for (const PresetPort& documented : preset->ports) {
      result.push_back({documented.port, provider, documented.tls, nullptr});
    }
    return result;
  }
  if (ports == nullptr) {
    reader.fail_table("upstream.port: missing (set port = 587 or ports = [587, 465, 2525])");
  }
  if (!ports->is_array()) {
    reader.fail("ports", *ports,
                "expected an array of ports, got " + std::string(type_name(*ports)));
  }
  if (ports->as_array()->empty()) reader.fail("ports", *ports, "lists no port");
  std::vector<Port> result;
  for (const toml::node& element : *ports->as_array()) {
    Port next{};
    if (element.is_table()) {
      next = read_port_entry(reader, element, table_tls, preset);
    } else if (element.is_integer()) {
      next = port_with_default_tls(checked_port(reader, "ports", element), &element, table_tls,
                                   preset);
      warn_if_default_hides_implicit_tls(reader, "ports", next);
    } else {
      reader.fail("ports", element,
                  "expected a port number or { port = 2465, tls = \"implicit\" }, got " +
                      std::string(type_name(element)));
    }
    for (const Port& earlier : result) {
      if (earlier.number == next.number) {
        reader.fail("ports", element, "port " + std::to_string(next.number) + " is listed twice");
      }
    }
    result.push_back(next);
  }
  return result;
}

// `provider` and `region`: the preset to expand, or null when the table names none.
struct ProviderChoice {
  const ProviderPreset* preset = nullptr;
  std::string host;   // the preset's host for the region
  std::string label;  // "ses/us-east-1", for `check`
};

ProviderChoice read_provider(const TableReader& reader) {
  const auto name = reader.string("provider");
  const auto region = reader.string("region");
  if (!name) {
    if (region) {
      reader.fail("region", *reader.find("region"),
                  "is only used with provider (provider = \"ses\", region = \"us-east-1\")");
    }
    return {};
  }
  const toml::node& provider_node = *reader.find("provider");
  const ProviderPreset* preset = find_provider_preset(*name);
  if (preset == nullptr) {
    reader.fail("provider", provider_node,
                "\"" + *name + "\" is not a known provider (use one of " + provider_preset_names() +
                    ", or set host and ports yourself)");
  }
  std::string known_regions;
  for (const RegionHost& candidate : preset->region_hosts) {
    known_regions +=
        (known_regions.empty() ? "\"" : " or \"") + std::string(candidate.region) + "\"";
  }
  if (known_regions.empty()) known_regions = "an AWS region such as \"us-east-1\"";
  if (!preset->needs_region()) {
    if (region) {
      reader.fail("region", *reader.find("region"),
                  "provider \"" + *name + "\" has no regions; remove region");
    }
    return {preset, *preset_host(*preset, ""), *name};
  }
  if (!region) {
    reader.fail("provider", provider_node,
                "\"" + *name + "\" needs region (" + known_regions + ")");
  }
  const auto host = preset_host(*preset, *region);
  if (!host) {
    reader.fail("region", *reader.find("region"),
                "\"" + *region + "\" is not a region of provider \"" + *name + "\" (use " +
                    known_regions + ")");
  }
  return {preset, *host, *name + "/" + *region};
}

// "14/s", "30/min", "500/h", "2000/d": messages per second, or nullopt when malformed.
std::optional<double> parse_rate(std::string_view text) {
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  std::uint64_t count = 0;
  for (char c : text.substr(0, slash)) {
    if (c < '0' || c > '9' || count > 1000000000) return std::nullopt;
    count = count * 10 + static_cast<std::uint64_t>(c - '0');
  }
  const std::string_view unit = text.substr(slash + 1);
  double seconds = 0;
  if (unit == "s")
    seconds = 1;
  else if (unit == "min" || unit == "m")
    seconds = 60;
  else if (unit == "h")
    seconds = 3600;
  else if (unit == "d")
    seconds = 86400;
  else
    return std::nullopt;
  if (count == 0) return std::nullopt;
  return static_cast<double>(count) / seconds;
}

// The account's limits: the preset's documented ones, then the table's own keys.
// `written`: whether this table writes any of their keys.
UpstreamLimits read_limits(const TableReader& reader, const ProviderPreset* preset, bool& written) {
  UpstreamLimits limits;
  written = false;
  if (preset != nullptr) {
    limits.max_message_rate = preset->max_message_rate;
    limits.max_message_rate_text = std::string(preset->max_message_rate_text);
    limits.max_connections = preset->max_connections;
    limits.max_recipients_per_day = preset->max_recipients_per_day;
    limits.max_message_size = preset->max_message_size;
  }
  for (std::string_view key :
       {"max_connections", "max_message_rate", "max_message_burst", "max_messages_per_connection",
        "max_recipients_per_day", "max_message_size", "throttle_patterns", "quota_patterns"})
    if (reader.has(key)) written = true;
  limits.max_connections = static_cast<std::size_t>(reader.bounded_integer(
      "max_connections", static_cast<std::int64_t>(limits.max_connections), 0, 10000));
  if (const toml::node* node = reader.find("max_message_rate")) {
    const auto text = reader.string("max_message_rate");
    const auto rate = parse_rate(*text);
    if (!rate) {
      reader.fail("max_message_rate", *node,
                  "\"" + *text + "\" is not a rate (write \"14/s\", \"30/min\" or \"500/h\")");
    }
    limits.max_message_rate = *rate;
    limits.max_message_rate_text = *text;
  }
  limits.max_message_burst =
      static_cast<std::size_t>(reader.bounded_integer("max_message_burst", 0, 0, 1000000));
  limits.max_messages_per_connection = static_cast<std::size_t>(
      reader.bounded_integer("max_messages_per_connection", 0, 0, 100000000));
  limits.max_recipients_per_day = static_cast<std::uint64_t>(reader.bounded_integer(
      "max_recipients_per_day", static_cast<std::int64_t>(limits.max_recipients_per_day), 0,
      1000000000));
  if (const auto size = reader.size("max_message_size")) limits.max_message_size = *size;
  for (std::string_view key : {"throttle_patterns", "quota_patterns"}) {
    const auto items = reader.string_array(key);
    if (!items) continue;
    std::vector<std::string> patterns;
    for (const StringItem& item : *items) {
      if (item.value.empty()) reader.fail(key, *item.node, "an empty pattern matches every reply");
      patterns.push_back(ascii::lower(item.value));
    }
    (key == "throttle_patterns" ? limits.throttle_patterns : limits.quota_patterns) =
        std::move(patterns);
  }
  return limits;
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
// `preset_username` is the user name a provider documents for everyone ("apikey"); it is
// used when a password source is set and `username` is not.
Credentials read_credentials(const TableReader& reader, std::string_view preset_username) {
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
  auto username = reader.string("username");
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
  if (source != nullptr && !username && !preset_username.empty()) {
    username = std::string(preset_username);
  }
  if (source != nullptr && !username) {
    const std::string_view key = password_env    ? "password_env"
                                 : password_file ? "password_file"
                                                 : "password";
    reader.fail(key, *source, "is set but upstream.username is not");
  }
  if (!username) return credentials;

  if (const toml::node* username_node = reader.find("username")) {
    if (username->empty()) reader.fail("username", *username_node, "is empty");
    if (source == nullptr) {
      reader.fail("username", *username_node,
                  "has no password (set password_env, password_file or password)");
    }
  }
  credentials.username = *username;

  if (password_env) {
    const toml::node& at = *reader.find("password_env");
    if (!is_valid_env_name(*password_env)) {
      reader.fail("password_env", at,
                  "\"" + *password_env + "\" is not an environment variable name");
    }
    if (const std::string* value = reader.context().env_file_value(*password_env)) {
      if (value->empty()) reader.fail("password_env", at, *password_env + " is empty in env_file");
      credentials.password_from_env_file = *value;
    } else if (std::getenv(password_env->c_str()) == nullptr) {
      // Only a warning: `check` may run in a shell that lacks the service's environment.
      reader.warn("password_env", at,
                  "environment variable " + *password_env + " is not set" +
                      (reader.context().env_file_read() ? " (nor in env_file)" : ""));
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
void warn_if_tls_can_be_avoided(const TableReader& reader, const Endpoint& endpoint, TlsMode tls,
                                std::string_view key, const toml::node& tls_node) {
  if (tls != TlsMode::None && tls != TlsMode::Opportunistic) return;
  bool loopback = endpoint.addresses.empty() ? is_loopback_host(endpoint.host) : true;
  for (const std::string& address : endpoint.addresses)
    if (!is_loopback_host(address)) loopback = false;
  if (loopback) return;
  reader.warn(key, tls_node,
              tls == TlsMode::None
                  ? "\"none\" toward " + endpoint.host +
                        ", which is not a loopback address: every message crosses the network "
                        "in clear text (use \"starttls\" or \"implicit\")"
                  : "\"opportunistic\" toward " + endpoint.host +
                        ", which is not a loopback address: anyone on the path can remove "
                        "STARTTLS from the EHLO reply and read the mail (use \"starttls\" or "
                        "\"implicit\")");
}

// tls_client_cert + tls_client_key: both or neither, both readable now (not at the first
// connection), and the key, a secret, readable by its owner only, as [server] tls_key.
// Whether they load and match is checked when the TLS context is built (daemon start,
// reload, probe), with OpenSSL's reason.
void read_client_certificate(const TableReader& reader, Endpoint& endpoint) {
  const auto cert = reader.string("tls_client_cert");
  const auto key = reader.string("tls_client_key");
  if (cert.has_value() != key.has_value()) {
    const std::string_view present = cert ? "tls_client_cert" : "tls_client_key";
    const std::string_view missing = cert ? "tls_client_key" : "tls_client_cert";
    reader.fail(present, *reader.find(present),
                "needs upstream." + std::string(missing) + " too (the certificate and its key)");
  }
  if (!cert) return;
  const std::pair<std::string_view, std::string> files[] = {{"tls_client_cert", *cert},
                                                            {"tls_client_key", *key}};
  for (const auto& [name, path] : files) {
    if (auto reason = unreadable_reason(path))
      reader.fail(name, *reader.find(name), "cannot read \"" + path + "\": " + *reason);
  }
  if (readable_by_group_or_others(*key)) {
    reader.warn("tls_client_key", *reader.find("tls_client_key"),
                "\"" + *key +
                    "\" (the TLS client private key) is readable by group or others; restrict it "
                    "(chmod 600)");
  }
  endpoint.tls_client_cert = *cert;
  endpoint.tls_client_key = *key;
}

std::vector<Endpoint> parse_upstream(ParseContext& context, const toml::table& table) {
  const TableReader reader(context, table, "upstream", "[[upstream]]",
                           {"host",
                            "port",
                            "ports",
                            "tls",
                            "name",
                            "ca_file",
                            "tls_server_name",
                            "tls_insecure_skip_verify",
                            "username",
                            "password_env",
                            "password_file",
                            "password",
                            "addresses",
                            "provider",
                            "region",
                            "auth",
                            "oauth_token_file",
                            "oauth_token_command",
                            "oauth_token_lifetime",
                            "tls_client_cert",
                            "tls_client_key",
                            "max_connections",
                            "max_message_rate",
                            "max_message_burst",
                            "max_messages_per_connection",
                            "max_recipients_per_day",
                            "max_message_size",
                            "throttle_patterns",
                            "quota_patterns",
                            "sender",
                            "from",
                            "all_senders"});

  // Explicit keys win over the preset: host, port/ports, tls, username.
  const ProviderChoice provider = read_provider(reader);
  const auto written_host = reader.string("host");
  if (!written_host && provider.preset == nullptr) {
    reader.fail_table(
        "upstream.host: missing (every [[upstream]] needs a host or a provider such as "
        "provider = \"sendgrid\")");
  }
  const std::string host = written_host.value_or(provider.host);
  if (written_host && !is_valid_host(host)) {
    reader.fail("host", *reader.find("host"),
                "\"" + host + "\" is not a valid host name or IP address");
  }
  const TlsSetting table_tls = read_tls_mode(reader);
  const std::vector<Port> ports = read_ports(reader, table_tls, provider.preset);

  Endpoint common;
  common.host = host;
  common.provider = provider.label;
  common.name = reader.string("name").value_or(host);
  if (!is_valid_label(common.name)) {
    const std::string_view key = reader.has("name")   ? "name"
                                 : reader.has("host") ? "host"
                                                      : "provider";
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
  read_client_certificate(reader, common);
  common.credentials = read_credentials(
      reader, provider.preset != nullptr ? provider.preset->username : std::string_view());
  common.source_line = static_cast<int>(table.source().begin.line);
  common.limits = read_limits(reader, provider.preset, common.limits_written);
  common.identity = read_sender_identity(reader);

  std::vector<Endpoint> endpoints;
  std::set<const toml::node*> warned;  // one warning per written `tls`, not one per port
  for (const Port& port : ports) {
    // "none" and "opportunistic" are only ever written, so tls_node is set for them.
    const std::string_view key = port.tls_node == table_tls.node ? "tls" : "ports.tls";
    if (port.tls == TlsMode::None && !common.tls_client_cert.empty()) {
      reader.fail(key, *port.tls_node,
                  "\"none\" with tls_client_cert set: a client certificate needs TLS (use "
                  "\"starttls\" or \"implicit\")");
    }
    if (port.tls == TlsMode::None && common.credentials.configured()) {
      reader.fail(key, *port.tls_node,
                  "\"none\" with username set: credentials would travel in clear text (use "
                  "\"starttls\" or \"implicit\")");
    }
    if (port.tls_node != nullptr && warned.insert(port.tls_node).second) {
      warn_if_tls_can_be_avoided(reader, common, port.tls, key, *port.tls_node);
    }
    Endpoint endpoint = common;
    endpoint.port = port.number;
    endpoint.tls = port.tls;
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
  std::map<std::string, int> first_table_of_name;  // where an account's own keys belong
  for (const toml::node& element : *node->as_array()) {
    for (Endpoint& endpoint : parse_upstream(context, *element.as_table())) {
      const auto [first, new_name] =
          first_table_of_name.emplace(endpoint.name, endpoint.source_line);
      const bool later_table = !new_name && first->second != endpoint.source_line;
      if (later_table && endpoint.limits_written) {
        throw context.error(element.source(),
                            "upstream: limits of \"" + endpoint.name +
                                "\" (max_connections, max_message_rate, ...) belong on its "
                                "first [[upstream]] table, at line " +
                                std::to_string(first->second));
      }
      if (later_table && endpoint.identity.configured()) {
        throw context.error(element.source(),
                            "upstream: sender, from and all_senders belong to the account: "
                            "write them on the first [[upstream]] named \"" +
                                endpoint.name + "\" (line " + std::to_string(first->second) + ")");
      }
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

namespace portrelay::config::detail {

std::vector<Upstream> group_upstreams(std::vector<Endpoint>& chain) {
  std::vector<Upstream> upstreams;
  std::map<std::string, std::size_t> index_by_name;
  for (Endpoint& endpoint : chain) {
    const auto [found, inserted] = index_by_name.emplace(endpoint.name, upstreams.size());
    if (inserted) {
      Upstream upstream;
      upstream.index = upstreams.size();
      upstream.name = endpoint.name;
      upstream.source_line = endpoint.source_line;
      upstream.limits = endpoint.limits;  // the account's keys are on its first table
      upstream.identity = endpoint.identity;
      upstreams.push_back(std::move(upstream));
    }
    endpoint.upstream = found->second;
    upstreams[found->second].endpoints.push_back(endpoint.index);
  }
  return upstreams;
}

}  // namespace portrelay::config::detail
