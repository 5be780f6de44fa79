// Alias resolution: local names to the remote addresses of the people who read their mail.
#include "portrelay/config/alias_table.hpp"

#include <algorithm>
#include <set>

#include "portrelay/base/ascii.hpp"

namespace portrelay::config {
namespace {

std::string local_part(std::string_view address) {
  const std::size_t at = address.rfind('@');
  return ascii::lower(at == std::string_view::npos ? address : address.substr(0, at));
}

}  // namespace

AliasTable::AliasTable(Entries entries, LocalDomains local) : local_(std::move(local)) {
  for (auto& [name, targets] : entries) entries_[ascii::lower(name)] = std::move(targets);
}

const std::vector<std::string>* AliasTable::targets_of(std::string_view local_address) const {
  auto found = entries_.find(local_part(local_address));
  if (found == entries_.end()) found = entries_.find("default");
  return found == entries_.end() ? nullptr : &found->second;
}

std::vector<std::string> AliasTable::resolve(std::string_view address) const {
  std::vector<std::string> result;
  if (!local_.contains(address)) return {std::string(address)};
  // Depth-first over the chain; a name already on the path is a loop and yields nothing.
  std::set<std::string> on_path;
  auto expand = [&](auto& self, std::string_view local_address) -> void {
    const std::string name = local_part(local_address);
    if (!on_path.insert(name).second) return;
    if (const auto* targets = targets_of(local_address)) {
      for (const std::string& target : *targets) {
        if (local_.contains(target)) {
          self(self, target);
        } else if (std::find(result.begin(), result.end(), target) == result.end()) {
          result.push_back(target);
        }
      }
    }
    on_path.erase(name);
  };
  expand(expand, address);
  return result;
}

std::string AliasTable::find_loop() const {
  std::vector<std::string> path;
  std::string loop;
  auto visit = [&](auto& self, const std::string& name) -> bool {
    if (std::find(path.begin(), path.end(), name) != path.end()) {
      for (const std::string& step : path) loop += step + " -> ";
      loop += name;
      return true;
    }
    const auto found = entries_.find(name);
    if (found == entries_.end()) return false;  // "default" catches it: not a chain step
    path.push_back(name);
    for (const std::string& target : found->second)
      if (local_.contains(target) && self(self, local_part(target))) return true;
    path.pop_back();
    return false;
  };
  for (const auto& entry : entries_) {
    path.clear();
    if (visit(visit, entry.first)) return loop;
  }
  return {};
}

}  // namespace portrelay::config
