#pragma once
// Validated, immutable configuration. Built once from a TOML file; a reload builds a
// new snapshot. Every key is documented in conf/portrelay.toml and the README.
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/base/log.hpp"
#include "portrelay/base/tls_mode.hpp"
#include "portrelay/base/upstream_auth.hpp"
#include "portrelay/config/alias_table.hpp"
#include "portrelay/config/route.hpp"
#include "portrelay/config/sender_identity.hpp"
#include "portrelay/net/cidr.hpp"

namespace portrelay::config {

using Duration = std::chrono::milliseconds;

// The TLS vocabulary lives in the bottom layer; `config::TlsMode` stays a valid spelling.
using portrelay::TlsMode;
using portrelay::to_string;

// passthrough: the client's 250 is the upstream's 250. spool: the client's 250 means the
// message is durably queued; delivery runs in the background.
enum class RelayMode { Passthrough, Spool };

// "127.0.0.1:2525", "[::1]:2525". host is an IP literal (no brackets).
struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;
  std::string str() const;  // back in "ip:port" / "[ip]:port" form
};

// [server] workers: at most this many event loops.
constexpr std::size_t kMaxWorkers = 64;
// The default of [server] workers: the cores this process may use
// (std::thread::hardware_concurrency()), at most 8, at least 1.
std::size_t default_workers();

struct ServerConfig {
  std::vector<ListenAddress> listen;               // default {127.0.0.1:2525}
  std::vector<ListenAddress> listen_implicit_tls;  // TLS from the first byte; needs tls_cert
  std::string hostname;                            // default: gethostname()
  std::uint64_t max_message_size = 25ull << 20;    // octets
  std::size_t max_recipients = 100;
  std::size_t max_sessions = 1000;  // concurrent client sessions
  // Concurrent sessions from one client IP address, except from `trusted_networks`.
  std::size_t max_sessions_per_address = 100;
  // Clients exempt from max_sessions_per_address: on loopback every local application
  // shares one address, so a per-address cap there is one budget for all of them (as
  // Postfix exempts $mynetworks). Default 127.0.0.0/8 and ::1/128; [] exempts nobody.
  std::vector<net::Cidr> trusted_networks;
  // Concurrent sessions that have neither authenticated nor sent MAIL yet. When this or
  // max_sessions is reached, the one that has made no progress for longest is closed to
  // make room (if it has been idle for a second), rather than refusing the new client.
  std::size_t max_sessions_before_mail = 500;
  // Event loops (threads) that accept and relay client sessions in passthrough mode, each
  // with its own listener sockets (SO_REUSEPORT), sessions, selector and pool; the limits
  // above stay per daemon. Default: one less than the cores, 1..8 (default_workers()). Start only.
  std::size_t workers = default_workers();
  std::vector<net::Cidr> allow;  // default 127.0.0.0/8 and ::1/128
  // `allow` was written in the file. If not, listeners that require AUTH take clients
  // from anywhere (AUTH is their access control); the others keep the loopback default.
  bool allow_explicit = false;
  // RFC 5321 4.5.3.2 server timeouts.
  Duration command_timeout = std::chrono::minutes(5);  // waiting for the next command
  Duration data_timeout = std::chrono::minutes(3);     // between data blocks
  // TLS and AUTH for local submissions.
  std::string tls_cert;                        // PEM file; enables STARTTLS on `listen`
  std::string tls_key;                         // PEM file
  std::string users_file;                      // "user:hash" lines for client AUTH
  bool require_auth = false;                   // every listener requires AUTH
  std::vector<ListenAddress> require_auth_on;  // or only these listeners
  // Client AUTH failures: the 535 waits auth_failure_delay, doubling with each recent
  // failure from the same address (up to 8x); a connection is dropped after
  // max_auth_failures.
  Duration auth_failure_delay = std::chrono::seconds(1);
  std::size_t max_auth_failures = 3;
  // Envelope senders clients may use (sender_pattern.hpp); empty: any. Others get 550 5.7.1
  // at MAIL. A users_file entry's own list replaces it for that user.
  std::vector<std::string> allowed_senders;
  // Date and Message-ID are added to SMTP-submitted mail that lacks them (RFC 6409 8),
  // as `sendmail` always does.
  bool add_missing_headers = true;
  bool requires_auth(const ListenAddress& listener) const {
    if (require_auth) return true;
    for (const auto& address : require_auth_on)
      if (address.str() == listener.str()) return true;
    return false;
  }
};

struct RelayConfig {
  RelayMode mode = RelayMode::Passthrough;
  // Upstream timeouts, each named for the one wait it bounds (docs/CONFIGURATION.md).
  Duration resolve_timeout = std::chrono::seconds(10);     // DNS lookup of one host
  Duration connect_timeout = std::chrono::seconds(10);     // TCP, all of a host's addresses
  Duration greeting_timeout = std::chrono::seconds(30);    // the 220 after TCP (or TLS)
  Duration handshake_timeout = std::chrono::seconds(30);   // TLS, and each EHLO/STARTTLS/AUTH reply
  Duration command_timeout = std::chrono::minutes(5);      // reply to MAIL, RCPT, DATA
  Duration data_timeout = std::chrono::minutes(10);        // reply after the final dot
  Duration pool_check_timeout = std::chrono::seconds(10);  // RSET on a pooled connection
  // A pooled connection whose server answered less than this ago is reused without the
  // RSET check (0: always check).
  Duration pool_check_after = std::chrono::seconds(2);
  Duration stagger = std::chrono::milliseconds(250);  // racing delay (RFC 8305)
  std::size_t max_parallel = 3;                       // attempts raced at once
  // Health memory: a failed endpoint is skipped for `cooldown`, doubling per consecutive
  // failure up to `cooldown_max` (with jitter), and re-probed in the background.
  Duration cooldown = std::chrono::seconds(30);
  Duration cooldown_max = std::chrono::minutes(10);
  // While the spool holds deferred messages, a down endpoint preferred to the working ones
  // is probed before its cool-down ends: `recovery_probe_min` after a failure, doubling per
  // consecutive failure up to `recovery_probe_max` (with jitter).
  Duration recovery_probe_min = std::chrono::seconds(1);
  Duration recovery_probe_max = std::chrono::seconds(10);
  // Every endpoint is probed at start-up and then again within this interval (jittered,
  // never later), so its health (portrelay_upstream_up, /readyz) is current even when no
  // message used it. Zero turns start-up and periodic probes off (fail-back probes stay).
  Duration probe_interval = std::chrono::seconds(60);
  // Ready upstream connections kept for reuse across client sessions. Every connection
  // handed back is kept, up to the ceiling per endpoint, so the pool holds what the last
  // pool_idle_timeout needed at once: unused ones expire.
  Duration pool_idle_timeout = std::chrono::seconds(30);
  std::size_t pool_max_per_endpoint = 64;  // the ceiling; 0 disables the pool
  std::string helo_name;                   // default: server.hostname
  // Passthrough only: a message no endpoint takes now for a transient reason (everything
  // unreachable, 4xx, a broken connection) is queued in the spool and the client hears
  // "250 queued for retry" instead of 451. Off by default so that a configuration that
  // never mentions spooling never writes to disk; the shipped example turns it on.
  bool spool_on_failure = false;
  // A message whose sender matches no [[route]] gets 550 5.7.1 at MAIL instead of the
  // default route (every upstream in order). Needs at least one [[route]].
  bool require_route = false;
  // Upstream limits (issue #18, docs/CONFIGURATION.md): how long a client's message waits
  // for an upstream's limit before the next upstream (or 451 4.7.0); how long a throttled
  // upstream is paused (doubling per throttle in a row up to throttle_backoff_max); how
  // long a quota refusal pauses it when the daily window does not say; how many transient
  // refusals in a row at MAIL/DATA/end of data pause it like a throttle (0: never).
  Duration max_limit_wait = std::chrono::seconds(5);
  Duration throttle_backoff = std::chrono::seconds(60);
  Duration throttle_backoff_max = std::chrono::minutes(10);
  Duration quota_backoff = std::chrono::hours(1);
  std::size_t max_consecutive_refusals = 3;
  bool uses_spool() const { return mode == RelayMode::Spool || spool_on_failure; }
};

// [spool]: the durable queue (docs/CONFIGURATION.md).
struct SpoolConfig {
  std::string dir = "/var/spool/portrelay";            // created 0700 if missing
  std::size_t max_messages = 100000;                   // more: 452 4.3.1 to new messages
  std::uint64_t max_bytes = 10ull << 30;               // queued octets
  std::uint64_t min_free_disk = 100ull << 20;          // free space the spool must leave
  Duration max_lifetime = std::chrono::hours(24 * 5);  // then bounce (Postfix's default)
  Duration retry_min = std::chrono::seconds(30);       // backoff after a transient refusal,
  Duration retry_max = std::chrono::minutes(30);       // doubling, with jitter
  std::size_t max_deliveries = 32;                     // concurrent background deliveries
  bool bounces = true;  // false: permanent failures go to failed/ instead of a bounce
  Duration failed_lifetime = std::chrono::hours(24 * 7);  // how long failed/ keeps them
};

struct Credentials {
  std::string username;
  std::string password_env;   // name of an environment variable
  std::string password_file;  // first line is the password
  std::string password;       // inline (warned about by `check`)
  // password_env's value from the env_file, when the file has it (it wins over the
  // process environment, which is only looked at when this is empty).
  std::string password_from_env_file;
  // `auth`: PLAIN/LOGIN with the password above, or XOAUTH2 / OAUTHBEARER with an access
  // token from exactly one of the two sources below, used for at most the lifetime.
  UpstreamAuth auth = UpstreamAuth::Password;
  std::string oauth_token_file;     // first line is the token
  std::string oauth_token_command;  // run without a shell, argv split on spaces; stdout line 1
  Duration oauth_token_lifetime = std::chrono::minutes(5);
  bool configured() const { return !username.empty(); }
  bool oauth() const { return auth != UpstreamAuth::Password; }
};

// What one account allows (issue #18). Zero: no limit. Written on the first [[upstream]]
// table of a name; `provider` presets fill in what the provider documents.
struct UpstreamLimits {
  std::size_t max_connections = 0;    // concurrent, across its ports, probes included
  double max_message_rate = 0;        // messages per second (token bucket)
  std::string max_message_rate_text;  // as written ("14/s"), for messages
  std::size_t max_message_burst = 0;  // bucket size; 0: 1 (evenly spaced)
  std::size_t max_messages_per_connection = 0;
  std::uint64_t max_recipients_per_day = 0;  // rolling 24 h, kept in the spool directory
  std::uint64_t max_message_size = 0;        // octets
  // Reply text (case-insensitive substrings) that means "slow down" / "quota reached".
  std::vector<std::string> throttle_patterns = {"throttling", "rate exceeded", "too many",
                                                "concurrent connection limit", "try again later"};
  std::vector<std::string> quota_patterns = {"daily message quota exceeded",
                                             "daily user sending limit", "quota exceeded"};
  bool any() const {
    return max_connections || max_message_rate > 0 || max_messages_per_connection ||
           max_recipients_per_day || max_message_size;
  }
};

// One endpoint of the failover chain: an `[[upstream]]` with `ports = [a, b]` (or a
// `provider` preset) expands to one Endpoint per port, in list order.
struct Endpoint {
  std::size_t index = 0;  // position in the chain, 0 = most preferred
  std::string name;       // metrics label `upstream`; defaults to host
  std::string host;       // DNS name or IP literal
  // Optional fixed IP addresses to connect to instead of resolving `host` (which still
  // names the server for SNI and certificate checks), raced in the order given.
  std::vector<std::string> addresses;
  std::uint16_t port = 0;
  TlsMode tls = TlsMode::StartTls;
  // TLS verification of the upstream.
  std::string ca_file;          // empty: system CA store
  std::string tls_server_name;  // SNI / name to verify; default host
  bool tls_insecure_skip_verify = false;
  // A TLS client certificate (PEM chain) and its private key, presented when the server
  // asks (certificate-authenticated connectors). Both or neither.
  std::string tls_client_cert;
  std::string tls_client_key;
  Credentials credentials;
  // The provider preset this endpoint was expanded from ("ses/us-east-1", "sendgrid");
  // empty when the [[upstream]] names no provider. Shown by `check` only.
  std::string provider;
  int source_line = 0;       // line of the [[upstream]] table, for messages
  std::size_t upstream = 0;  // index into Config::upstreams: the account it belongs to
  // The account keys its table wrote (or its preset set): group_upstreams() keeps the first
  // table's, and refuses them on a later table of the same name.
  UpstreamLimits limits;
  bool limits_written = false;
  // sender / from / all_senders as written on this table; the account's identity is
  // Upstream::identity (taken from the first table of the name).
  SenderIdentity identity;
  std::string label() const;  // "name:port"
};

// One upstream: a provider account, across all its ports. It is every [[upstream]] table
// that carries the same `name` (the metrics label `upstream` already meant this), so its
// endpoints share limits, pauses and sender identity. Keys that belong to the account
// rather than to a port are written on the first table of that name.
struct Upstream {
  std::size_t index = 0;               // position in Config::upstreams, first mention first
  std::string name;                    // unique; what [[route]] and metrics call it
  int source_line = 0;                 // line of its first [[upstream]] table
  std::vector<std::size_t> endpoints;  // indices into Config::chain, in chain order
  UpstreamLimits limits;
  // sender / from / all_senders: the identity this provider has verified, applied to a
  // message when it is sent here, on top of [rewrite] (sender_identity.hpp).
  SenderIdentity identity;
};

// [rewrite]: how mail from this machine gets an identity its provider accepts.
struct RewriteConfig {
  // Domains whose addresses are this machine's own (lowercase). Default: server.hostname,
  // the first line of /etc/mailname, "localhost", "localhost.localdomain". An address with
  // no domain is local too (local_domains.hpp).
  std::vector<std::string> local_domains;
  // The domain a bare address gets (`sendmail root`, MAIL FROM:<cron>); keep it among
  // local_domains. Default "": the first line of /etc/mailname, else server.hostname.
  std::string mail_domain;
  // sender / from / all_senders for local mail, at acceptance (sender_identity.hpp).
  SenderIdentity identity;
  // A replaced From becomes the Reply-To when the message has none.
  bool keep_reply_to = true;
};

struct MetricsConfig {
  bool enabled = true;
  ListenAddress listen{"127.0.0.1", 9465};
};

// [log]: what the daemon writes on stderr (docs/CONFIGURATION.md). `portrelay run
// --log-level` overrides `level`; a reload applies both.
struct LogConfig {
  log::Level level = log::Level::Info;  // lines below it are dropped
  log::Format format = log::Format::Logfmt;
};

struct Config {
  std::string source;  // file path the config came from
  // Top-level `env_file`: the secrets file every *_env key reads first (env_file.hpp).
  std::string env_file;
  ServerConfig server;
  RelayConfig relay;
  std::vector<Endpoint> chain;
  std::vector<Upstream> upstreams;  // the chain's endpoints grouped by account (name)
  RewriteConfig rewrite;
  AliasTable aliases;         // [aliases], over rewrite.local_domains (with aliases_file merged in)
  std::string aliases_file;   // [aliases] aliases_file, read at each load; "" when unset
  std::vector<Route> routes;  // [[route]], in file order: the first match wins
  MetricsConfig metrics;
  SpoolConfig spool;
  LogConfig log;
  std::vector<std::string> warnings;  // "file:line: ..." notes for `check` (never secrets)
};

// "file:line:col: message". Thrown for any syntax, type or validation error.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, int line, int column, const std::string& message);
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  int column() const { return column_; }

 private:
  std::string file_;
  int line_;
  int column_;
};

Config load_config_file(const std::string& path);
// `source_name` is used in error messages in place of a file name.
Config parse_config(std::string_view toml_text, const std::string& source_name);
// Effective chain, one endpoint per line, for `portrelay check`.
std::string describe_chain(const Config& config);
// Each [[route]]'s chain and what becomes of other senders, for `portrelay check`; "" when
// there is no [[route]].
std::string describe_routes(const Config& config);

// "250ms", "10s", "5m", "1h", "1m30s". nullopt if malformed or negative.
std::optional<Duration> parse_duration(std::string_view text);
// The inverse for messages: "10s", "250ms".
std::string format_duration(Duration duration);
// 1048576, "512KiB", "25MiB", "1GiB", "10MB" (decimal), "100B". nullopt if malformed.
std::optional<std::uint64_t> parse_size(std::string_view text);
// "127.0.0.1:2525" / "[::1]:2525". nullopt if malformed.
std::optional<ListenAddress> parse_listen_address(std::string_view text);

}  // namespace portrelay::config
