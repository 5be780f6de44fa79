#pragma once
// Provider presets: `provider = "ses"` in an [[upstream]] stands for the provider's documented
// SMTP host, ports and TLS mode per port. The table itself is data, in provider_presets.cpp.
// Private to src/config.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/base/tls_mode.hpp"

namespace portrelay::config::detail {

struct PresetPort {
  std::uint16_t port;
  TlsMode tls;
};

// Region -> host, for providers that run separate regional services under fixed names.
struct RegionHost {
  std::string_view region;
  std::string_view host;
};

struct ProviderPreset {
  std::string_view name;  // the value of `provider`
  // The SMTP host. "{region}" is replaced by the table's `region` (Amazon SES names its
  // endpoints after AWS regions, which are added over time: any well-formed name is taken).
  std::string_view host;
  std::vector<RegionHost> region_hosts;  // when non-empty, `region` picks one of these
  // Tried in this order: ports meant to get around blocked 25/465/587 first where the
  // provider documents them, then 587 and 465. Port 25 is left out: clouds block it.
  std::vector<PresetPort> ports;
  std::string_view username;  // the fixed user name some providers document; empty if none
  std::string_view source;    // where the facts come from
  // Documented sending limits (issue #18); zero: none documented. The operator's own keys
  // on the [[upstream]] table win over these.
  double max_message_rate = 0;  // messages per second
  std::string_view max_message_rate_text;
  std::size_t max_connections = 0;
  std::uint64_t max_recipients_per_day = 0;
  std::uint64_t max_message_size = 0;
  std::string_view limits_source;  // where the limits come from
  bool needs_region() const {
    return !region_hosts.empty() || host.find("{region}") != std::string_view::npos;
  }
};

// Every preset, in the order they are documented.
const std::vector<ProviderPreset>& provider_presets();
const ProviderPreset* find_provider_preset(std::string_view name);
// "ses", "sendgrid", ... as one quoted, comma-separated list for messages.
std::string provider_preset_names();
// The preset's host for `region`, or nullopt when the region is not one it knows (or, for a
// "{region}" host, not shaped like an AWS region name such as "us-east-1").
std::optional<std::string> preset_host(const ProviderPreset& preset, std::string_view region);
// The TLS mode the preset documents for `port`, if it lists that port.
std::optional<TlsMode> preset_tls_for_port(const ProviderPreset& preset, std::uint16_t port);

}  // namespace portrelay::config::detail
