// [server]: where applications submit mail, and who may do so.
#include <algorithm>
#include <limits>
#include <string>
#include <thread>

#include "portrelay/config/sender_pattern.hpp"
#include "portrelay/net/cidr_coverage.hpp"
#include "sections.hpp"
#include "value_checks.hpp"

namespace portrelay::config::detail {
namespace {

constexpr std::int64_t kNoLimit = std::numeric_limits<std::int64_t>::max();
// RFC 5321 4.5.3.1.8: a server MUST accept at least 100 recipients per message.
constexpr std::int64_t kRfcMinimumRecipients = 100;

struct Listener {
  ListenAddress address;
  std::string_view key;
  const toml::node* node;
};

std::vector<Listener> read_listeners(const TableReader& reader, std::string_view key,
                                     std::vector<ListenAddress> fallback) {
  std::vector<Listener> listeners;
  const auto items = reader.string_array(key);
  if (!items) {
    for (auto& address : fallback) listeners.push_back({std::move(address), key, nullptr});
    return listeners;
  }
  for (const StringItem& item : *items) {
    const auto address = parse_listen_address(item.value);
    if (!address) {
      reader.fail(key, *item.node,
                  "\"" + item.value +
                      "\" is not an IP address and port (write \"127.0.0.1:2525\" or "
                      "\"[::1]:2525\")");
    }
    listeners.push_back({*address, key, item.node});
  }
  return listeners;
}

// A file the daemon will open later: fail now, with the line, rather than at first use.
std::string read_file_path(const TableReader& reader, std::string_view key) {
  auto path = reader.string(key);
  if (!path) return {};
  if (auto reason = unreadable_reason(*path)) {
    reader.fail(key, *reader.find(key), "cannot read \"" + *path + "\": " + *reason);
  }
  return *path;
}

// A secret the daemon reads (TLS private key, password hashes): other local users should not.
std::string read_secret_file_path(const TableReader& reader, std::string_view key,
                                  std::string_view what) {
  std::string path = read_file_path(reader, key);
  if (!path.empty() && readable_by_group_or_others(path)) {
    reader.warn(key, *reader.find(key),
                "\"" + path + "\" (" + std::string(what) +
                    ") is readable by group or others; restrict it (chmod 600)");
  }
  return path;
}

std::string read_hostname(const TableReader& reader) {
  const auto hostname = reader.string("hostname");
  if (!hostname) return default_hostname();
  if (!is_valid_hostname(*hostname)) {
    reader.fail("hostname", *reader.find("hostname"),
                "\"" + *hostname + "\" is not a valid hostname (letters, digits, '-' and '.')");
  }
  return *hostname;
}

// "10.0.0.0/8" -> "10.0.0.0"
std::string address_of(const net::Cidr& network) {
  const std::string text = network.str();
  return text.substr(0, text.find('/'));
}

// A list of networks (`allow`, `trusted_networks`); loopback when the key is absent.
std::vector<net::Cidr> read_networks(const TableReader& reader, std::string_view key) {
  const auto items = reader.string_array(key);
  if (!items) return {*net::Cidr::parse("127.0.0.0/8"), *net::Cidr::parse("::1/128")};
  std::vector<net::Cidr> networks;
  for (const StringItem& item : *items) {
    const auto network = net::Cidr::parse(item.value);
    if (!network) {
      reader.fail(key, *item.node,
                  "\"" + item.value +
                      "\" is not a network in CIDR notation (like \"10.0.0.0/8\" or "
                      "\"fd00::/8\")");
    }
    // Cidr clears host bits; say so, since "10.1.2.3/8" may have been meant as a /32.
    const auto host_route = net::Cidr::parse(item.value.substr(0, item.value.find('/')));
    if (address_of(*host_route) != address_of(*network)) {
      reader.warn(key, *item.node,
                  "\"" + item.value + "\" has host bits set; it means " + network->str());
    }
    networks.push_back(*network);
  }
  return networks;
}

// What a set of networks admits, for the open-relay messages; empty if not a whole family.
std::string whole_families(const std::vector<net::Cidr>& networks) {
  const bool v4 = net::covers_all_ipv4(networks);
  const bool v6 = net::covers_all_ipv6(networks);
  if (v4 && v6) return "every address";
  if (v4) return "every IPv4 address";
  if (v6) return "every IPv6 address";
  return {};
}

// Refuses configurations that would let anyone on the network relay mail through us: a
// non-loopback listener without AUTH whose allow-list, taken as a whole, admits every IPv4
// or every IPv6 client. Unions count ("0.0.0.0/1" + "128.0.0.0/1"), and so do IPv6
// networks that contain the IPv4-mapped block (IPv4 clients are matched as ::ffff:a.b.c.d).
// There is deliberately no override: a relay whose access control is a firewall can still
// list the networks the firewall lets in.
void check_not_open_relay(const TableReader& reader, const ServerConfig& server,
                          const std::vector<Listener>& listeners) {
  for (const Listener& listener : listeners) {
    if (is_loopback(listener.address) || server.requires_auth(listener.address)) continue;
    if (!reader.has("allow")) {
      const toml::node& at = listener.node ? *listener.node : *reader.find(listener.key);
      reader.fail(listener.key, at,
                  "non-loopback listener " + listener.address.str() +
                      " needs `allow` or `require_auth = true` (refusing to run an open relay)");
    }
    const std::string advice =
        " and listener " + listener.address.str() +
        " is not loopback: that is an open relay (list your client networks or set "
        "require_auth = true)";
    const auto items = reader.string_array("allow");
    // One entry alone: point at it.
    for (std::size_t i = 0; i < server.allow.size(); ++i) {
      const std::string admits = whole_families({server.allow[i]});
      if (admits.empty()) continue;
      reader.fail("allow", *(*items)[i].node,
                  "\"" + (*items)[i].value + "\" admits " + admits + advice);
    }
    // Only together: point at the list.
    const std::string admits = whole_families(server.allow);
    if (!admits.empty()) {
      reader.fail("allow", *reader.find("allow"),
                  "these networks together admit " + admits + advice);
    }
  }
}

// require_auth = true (every listener) or a list of the listeners that require AUTH.
void read_require_auth(const TableReader& reader, const std::vector<Listener>& listeners,
                       ServerConfig& server) {
  const toml::node* node = reader.find("require_auth");
  if (node == nullptr) return;
  if (node->is_boolean()) {
    server.require_auth = node->as_boolean()->get();
    return;
  }
  if (!node->is_array()) {
    reader.fail(
        "require_auth", *node,
        "expected true, false or a list of listen addresses, got " + std::string(type_name(*node)));
  }
  const auto items = reader.string_array("require_auth");  // keep alive for the loop
  for (const StringItem& item : *items) {
    const auto address = parse_listen_address(item.value);
    bool listed = false;
    for (const Listener& listener : listeners)
      if (address && listener.address.str() == address->str()) listed = true;
    if (!listed) {
      reader.fail(
          "require_auth", *item.node,
          "\"" + item.value + "\" is not one of the addresses in listen or listen_implicit_tls");
    }
    server.require_auth_on.push_back(*address);
  }
}

void check_distinct(const TableReader& reader, const std::vector<Listener>& listeners) {
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      // Port 0 lets the kernel pick a free port each time: those never collide.
      if (listeners[i].address.port == 0) continue;
      if (listeners[i].address.str() != listeners[j].address.str()) continue;
      reader.fail(listeners[i].key, *listeners[i].node,
                  listeners[i].address.str() + " is already listed in " +
                      reader.qualified(listeners[j].key));
    }
  }
}

}  // namespace

ServerConfig parse_server_section(ParseContext& context, const toml::table& table) {
  const TableReader reader(context, table, "server", "[server]",
                           {"listen",
                            "listen_implicit_tls",
                            "hostname",
                            "max_message_size",
                            "max_recipients",
                            "max_sessions",
                            "allow",
                            "command_timeout",
                            "data_timeout",
                            "tls_cert",
                            "tls_key",
                            "users_file",
                            "require_auth",
                            "auth_failure_delay",
                            "max_auth_failures",
                            "max_sessions_per_address",
                            "max_sessions_before_mail",
                            "trusted_networks",
                            "allowed_senders",
                            "add_missing_headers",
                            "workers"});
  ServerConfig server;

  auto listeners = read_listeners(reader, "listen", {ListenAddress{"127.0.0.1", 2525}});
  const auto implicit_tls_listeners = read_listeners(reader, "listen_implicit_tls", {});
  for (const Listener& listener : listeners) server.listen.push_back(listener.address);
  for (const Listener& listener : implicit_tls_listeners) {
    server.listen_implicit_tls.push_back(listener.address);
  }
  listeners.insert(listeners.end(), implicit_tls_listeners.begin(), implicit_tls_listeners.end());
  if (listeners.empty()) {
    reader.fail("listen", *reader.find("listen"),
                "no listener configured (set listen or listen_implicit_tls)");
  }
  check_distinct(reader, listeners);

  server.hostname = read_hostname(reader);
  if (const auto size = reader.size("max_message_size")) {
    if (*size == 0)
      reader.fail("max_message_size", *reader.find("max_message_size"), "must be greater than 0");
    server.max_message_size = *size;
  }
  server.max_recipients = static_cast<std::size_t>(
      reader.bounded_integer("max_recipients", server.max_recipients, 1, kNoLimit));
  if (server.max_recipients < kRfcMinimumRecipients) {
    reader.warn("max_recipients", *reader.find("max_recipients"),
                std::to_string(server.max_recipients) +
                    " is below the 100 recipients RFC 5321 requires a server to accept");
  }
  server.max_sessions = static_cast<std::size_t>(
      reader.bounded_integer("max_sessions", server.max_sessions, 1, kNoLimit));
  server.max_sessions_per_address = static_cast<std::size_t>(reader.bounded_integer(
      "max_sessions_per_address", server.max_sessions_per_address, 1, kNoLimit));
  server.max_sessions_before_mail = static_cast<std::size_t>(reader.bounded_integer(
      "max_sessions_before_mail", server.max_sessions_before_mail, 1, kNoLimit));
  server.workers = static_cast<std::size_t>(
      reader.bounded_integer("workers", static_cast<std::int64_t>(default_workers()), 1,
                             static_cast<std::int64_t>(kMaxWorkers)));
  server.trusted_networks = read_networks(reader, "trusted_networks");
  if (const std::string exempt = whole_families(server.trusted_networks); !exempt.empty()) {
    reader.warn("trusted_networks", *reader.find("trusted_networks"),
                "exempts " + exempt + " from max_sessions_per_address");
  }
  server.allow = read_networks(reader, "allow");
  server.allow_explicit = reader.has("allow");
  server.command_timeout = reader.timeout("command_timeout", server.command_timeout);
  server.data_timeout = reader.timeout("data_timeout", server.data_timeout);

  server.tls_cert = read_file_path(reader, "tls_cert");
  server.tls_key = read_secret_file_path(reader, "tls_key", "the TLS private key");
  if (server.tls_cert.empty() != server.tls_key.empty()) {
    const std::string_view present = server.tls_cert.empty() ? "tls_key" : "tls_cert";
    const std::string_view missing = server.tls_cert.empty() ? "tls_cert" : "tls_key";
    reader.fail(present, *reader.find(present),
                "set together with " + reader.qualified(missing) + " (both or neither)");
  }
  if (!server.listen_implicit_tls.empty() && server.tls_cert.empty()) {
    reader.fail("listen_implicit_tls", *reader.find("listen_implicit_tls"),
                "needs server.tls_cert and server.tls_key");
  }
  server.users_file = read_secret_file_path(reader, "users_file", "password hashes");
  read_require_auth(reader, listeners, server);
  if (server.require_auth || !server.require_auth_on.empty()) {
    const toml::node& at = *reader.find("require_auth");
    if (server.users_file.empty()) reader.fail("require_auth", at, "needs server.users_file");
    if (server.tls_cert.empty()) {
      reader.fail("require_auth", at,
                  "needs server.tls_cert and server.tls_key (AUTH is only offered over TLS)");
    }
  }

  server.auth_failure_delay = reader.timeout("auth_failure_delay", server.auth_failure_delay);
  server.max_auth_failures = static_cast<std::size_t>(
      reader.bounded_integer("max_auth_failures", server.max_auth_failures, 1, 100));
  server.add_missing_headers = reader.boolean("add_missing_headers").value_or(true);

  if (const auto patterns = reader.string_array("allowed_senders")) {
    if (patterns->empty())
      reader.fail("allowed_senders", *reader.find("allowed_senders"),
                  "lists no pattern (remove the key to allow every sender)");
    for (const StringItem& item : *patterns) {
      if (const std::string problem = sender_pattern_problem(item.value); !problem.empty())
        reader.fail("allowed_senders", *item.node, "\"" + item.value + "\" " + problem);
      server.allowed_senders.push_back(item.value);
    }
  }

  check_not_open_relay(reader, server, listeners);
  return server;
}

}  // namespace portrelay::config::detail

namespace portrelay::config {

std::size_t default_workers() {
  // One core is left to the programs that submit the mail (and to the spool's writer
  // thread): measured on 2 cores shared with the load (bench/workers.sh), 2 loops did 0.92x
  // the messages of 1 at 1.24x the CPU per message. Beyond 8 loops one relay's own work
  // rarely needs more; the operator may say so. hardware_concurrency() is 0 when unknown.
  const unsigned cores = std::thread::hardware_concurrency();
  return std::clamp<std::size_t>(cores > 0 ? cores - 1 : 1, 1, 8);
}

}  // namespace portrelay::config
