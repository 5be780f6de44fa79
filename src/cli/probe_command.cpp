#include <iostream>

#include "portrelay/base/log.hpp"
#include "portrelay/cli/commands.hpp"
#include "portrelay/probe/probe.hpp"

namespace portrelay::cli {
namespace {

// The chain of the [[route]] called `name`, as the whole chain of `config`: its endpoints
// in the route's order. False (and a message) when there is no such route.
bool keep_route_only(config::Config& config, const std::string& name) {
  if (name == config::kDefaultRouteName) return true;
  const config::Route* route = config::find_route(config.routes, name);
  if (route == nullptr) {
    std::string known;
    for (const config::Route& each : config.routes)
      known += (known.empty() ? "" : ", ") + each.name;
    std::cerr << "probe: no [[route]] named \"" << name << "\" in " << config.source
              << " (routes: " << (known.empty() ? "none" : known) << ", default)\n";
    return false;
  }
  std::vector<config::Endpoint> chain;
  for (std::size_t index : route->endpoints) {
    chain.push_back(config.chain.at(index));
    chain.back().index = chain.size() - 1;
  }
  config.chain = std::move(chain);
  config.upstreams.clear();  // indices into the old chain; probing does not use them
  config.routes.clear();
  return true;
}

}  // namespace

int probe(const ProbeOptions& options) {
  auto loaded = load_config_or_report(options.config_path);
  if (!loaded) return 1;
  config::Config config = std::move(*loaded);
  for (const auto& warning : config.warnings) std::cerr << "warning: " << warning << "\n";
  if (!options.route.empty() && !keep_route_only(config, options.route)) return 1;
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
