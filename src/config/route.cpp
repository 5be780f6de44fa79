// Route choice by envelope sender; names for routes that were not given one.
#include "portrelay/config/route.hpp"

#include "portrelay/config/sender_pattern.hpp"

namespace portrelay::config {

const Route* choose_route(const std::vector<Route>& routes, std::string_view sender) {
  for (const Route& route : routes)
    if (any_sender_matches(route.senders, sender)) return &route;
  return nullptr;
}

const Route* find_route(const std::vector<Route>& routes, std::string_view name) {
  if (name.empty()) return nullptr;
  for (const Route& route : routes)
    if (route.name == name) return &route;
  return nullptr;
}

Route default_route(std::size_t endpoints) {
  Route route;
  route.name = std::string(kDefaultRouteName);
  for (std::size_t i = 0; i < endpoints; ++i) route.endpoints.push_back(i);
  return route;
}

std::string derived_route_name(std::string_view first_pattern, std::size_t position) {
  constexpr std::size_t kMaxDerived = 48;
  std::string_view rest = first_pattern;
  // "*@shop.example.com" names the domain; "billing@example.com" keeps the whole address.
  while (!rest.empty() && (rest.front() == '*' || rest.front() == '@' || rest.front() == '.'))
    rest.remove_prefix(1);
  std::string name;
  for (char c : rest) {
    if (name.size() == kMaxDerived) break;
    const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.' || c == '-';
    name += safe ? static_cast<char>((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c) : '_';
  }
  const bool meaningful = name.find_first_not_of("_") != std::string::npos;
  if (!meaningful || name == kDefaultRouteName) return "route-" + std::to_string(position);
  return name;
}

}  // namespace portrelay::config
