#include <iostream>
#include <string>

#include "portrelay/cli/commands.hpp"
#include "portrelay/cli/password_prompt.hpp"
#include "portrelay/config/config.hpp"
#include "portrelay/server/password_hash.hpp"

namespace portrelay::cli {

std::optional<config::Config> load_config_or_report(const std::string& path) {
  try {
    return config::load_config_file(path);
  } catch (const config::ConfigError& error) {
    std::cerr << error.what() << "\n";
    return std::nullopt;
  }
}

int check(const std::string& config_path) {
  auto loaded = load_config_or_report(config_path);
  if (!loaded) return 1;
  const config::Config& config = *loaded;
  for (const auto& warning : config.warnings) std::cerr << "warning: " << warning << "\n";
  std::cout << config::describe_chain(config);
  std::cout << config::describe_routes(config);
  std::cout << "config OK: " << config.chain.size() << " endpoint(s), listening on";
  for (const auto& address : config.server.listen) std::cout << " " << address.str();
  for (const auto& address : config.server.listen_implicit_tls)
    std::cout << " " << address.str() << " (implicit TLS)";
  std::cout << "\n";
  return 0;
}

int version() {
  std::cout << "portrelay " << PORTRELAY_VERSION << "\n";
  return 0;
}

int hash_password(const std::string& username) {
  if (username.empty() || username.find(':') != std::string::npos) {
    std::cerr << "error: the user name must not be empty or contain ':'\n";
    return 1;
  }
  const PasswordRead read = read_new_password();
  if (!read.password) {
    std::cerr << "error: " << read.error << "\n";
    return 1;
  }
  std::cout << username << ":" << server::hash_password(*read.password) << "\n";
  return 0;
}

}  // namespace portrelay::cli
