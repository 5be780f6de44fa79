// Membership of an address in this machine's own mail domains.
#include "portrelay/config/local_domains.hpp"

#include <algorithm>
#include <fstream>

#include "portrelay/base/ascii.hpp"

namespace portrelay::config {
LocalDomains::LocalDomains(std::vector<std::string> domains) {
  for (const std::string& domain : domains) {
    std::string lower = ascii::lower(domain);
    if (!lower.empty() && std::find(domains_.begin(), domains_.end(), lower) == domains_.end())
      domains_.push_back(std::move(lower));
  }
}

bool LocalDomains::contains(std::string_view address) const {
  if (address.empty()) return false;
  // The last '@': a quoted local part may hold one ("a@b"@host).
  const std::size_t at = address.rfind('@');
  if (at == std::string_view::npos) return true;
  const std::string domain = ascii::lower(address.substr(at + 1));
  return std::find(domains_.begin(), domains_.end(), domain) != domains_.end();
}

std::string read_mailname(const std::string& path) {
  std::ifstream file(path);
  std::string line;
  if (!file || !std::getline(file, line)) return {};
  const std::size_t begin = line.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return {};
  const std::size_t end = line.find_last_not_of(" \t\r");
  return line.substr(begin, end - begin + 1);
}

std::vector<std::string> default_local_domains(std::string_view hostname,
                                               std::string_view mailname) {
  std::vector<std::string> domains;
  for (std::string_view name : {hostname, mailname, std::string_view("localhost"),
                                std::string_view("localhost.localdomain")}) {
    std::string lower = ascii::lower(name);
    if (!lower.empty() && std::find(domains.begin(), domains.end(), lower) == domains.end())
      domains.push_back(std::move(lower));
  }
  return domains;
}

}  // namespace portrelay::config
