#include <iostream>

#include "portrelay/base/log.hpp"
#include "portrelay/cli/commands.hpp"
#include "portrelay/probe/probe.hpp"

namespace portrelay::cli {

int probe(const ProbeOptions& options) {
  auto loaded = load_config_or_report(options.config_path);
  if (!loaded) return 1;
  config::Config config = std::move(*loaded);
  for (const auto& warning : config.warnings) std::cerr << "warning: " << warning << "\n";
  log::set_enabled(false);  // the table says it all; failures are in its DETAIL column
  std::vector<probe::EndpointProbe> probes;
  try {
    probes = probe::run_probes(config);
  } catch (const std::exception& error) {
    std::cerr << "probe: " << error.what() << "\n";
    return 1;
  }
  if (options.json)
    std::cout << probe::format_json(probes, config.relay.connect_timeout);
  else
    std::cout << probe::format_table(probes, config.relay.connect_timeout);
  return probe::endpoint_in_use(probes) ? 0 : 2;
}

}  // namespace portrelay::cli
