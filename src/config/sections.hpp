#pragma once
// One parser per top-level table of the configuration file. Private to src/config.
#include <toml++/toml.h>

#include <vector>

#include "portrelay/config/config.hpp"
#include "toml_reader.hpp"

namespace portrelay::config::detail {

ServerConfig parse_server_section(ParseContext& context, const toml::table& table);
RelayConfig parse_relay_section(ParseContext& context, const toml::table& table,
                                const ServerConfig& server);
MetricsConfig parse_metrics_section(ParseContext& context, const toml::table& table,
                                    const ServerConfig& server);
AliasTable parse_aliases_section(ParseContext& context, const toml::table& table,
                                 const RewriteConfig& rewrite);
SpoolConfig parse_spool_section(ParseContext& context, const toml::table& table);
LogConfig parse_log_section(ParseContext& context, const toml::table& table);
// `node` is the value of the top-level "upstream" key, or null when there is none.
std::vector<Endpoint> parse_upstream_chain(ParseContext& context, const toml::node* node);
// The chain's endpoints grouped by name into accounts; sets each Endpoint::upstream.
std::vector<Upstream> group_upstreams(std::vector<Endpoint>& chain);
// `node` is the value of the top-level "route" key, or null when there is none.
std::vector<Route> parse_routes(ParseContext& context, const toml::node* node,
                                const std::vector<Upstream>& upstreams);
// sender, from and all_senders of [rewrite] or an [[upstream]] (sender_identity_keys.cpp).
SenderIdentity read_sender_identity(const TableReader& reader);
RewriteConfig parse_rewrite_section(ParseContext& context, const toml::table& table,
                                    const ServerConfig& server);
AliasTable parse_aliases_section(ParseContext& context, const toml::table& table,
                                 const RewriteConfig& rewrite);

}  // namespace portrelay::config::detail
