// libFuzzer target: the TOML configuration loader. Any input either loads or is refused
// with a ConfigError (which is what `check` prints as file:line:col); nothing else may
// escape, and a loaded configuration satisfies the rules the daemon relies on.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "portrelay/config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace portrelay::config;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const Config config = parse_config(text, "fuzz.toml");
    if (config.chain.empty()) std::abort();
    if (config.server.listen.empty() && config.server.listen_implicit_tls.empty()) std::abort();
    if (config.relay.cooldown_max < config.relay.cooldown) std::abort();
    for (const Endpoint& endpoint : config.chain) {
      if (endpoint.port == 0 || endpoint.name.empty()) std::abort();
      if (endpoint.tls == TlsMode::None && endpoint.credentials.configured()) std::abort();
    }
    (void)describe_chain(config);
  } catch (const ConfigError& error) {
    // The file itself, or the env_file it names (an absolute path), with its line.
    const std::string& file = error.file();
    if (file != "fuzz.toml" && (file.empty() || file.front() != '/')) std::abort();
    if (std::string_view(error.what()).substr(0, file.size()) != file) std::abort();
  }
  return 0;
}
