// [metrics]: the Prometheus exposer.
#include <string>

#include "sections.hpp"

namespace portrelay::config::detail {

MetricsConfig parse_metrics_section(ParseContext& context, const toml::table& table,
                                    const ServerConfig& server) {
  const TableReader reader(context, table, "metrics", "[metrics]", {"enabled", "listen"});
  MetricsConfig metrics;
  metrics.enabled = reader.boolean("enabled").value_or(metrics.enabled);
  const auto listen = reader.string("listen");
  if (!listen) return metrics;

  const toml::node& at = *reader.find("listen");
  const auto address = parse_listen_address(*listen);
  if (!address) {
    reader.fail("listen", at,
                "\"" + *listen +
                    "\" is not an IP address and port (write \"127.0.0.1:9465\" or "
                    "\"[::1]:9465\")");
  }
  for (const auto* smtp_listeners : {&server.listen, &server.listen_implicit_tls}) {
    for (const ListenAddress& smtp : *smtp_listeners) {
      // Port 0 lets the kernel pick a free port each time: those never collide.
      if (metrics.enabled && address->port != 0 && smtp.str() == address->str()) {
        reader.fail("listen", at, address->str() + " is already an SMTP listener in [server]");
      }
    }
  }
  metrics.listen = *address;
  return metrics;
}

}  // namespace portrelay::config::detail
