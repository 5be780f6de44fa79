#pragma once
// [[route]]: which upstreams carry a message, chosen by its envelope sender. A shop's mail
// goes out through the account where the shop's domain is verified, the billing
// department's through another. A message that matches no route uses every [[upstream]] in
// order (the default route), unless [relay] require_route refuses it at MAIL.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace portrelay::config {

// The label of the default route in metrics and logs; no [[route]] may take it.
inline constexpr std::string_view kDefaultRouteName = "default";

struct Route {
  std::string name;                    // unique, label-safe (metrics label `route`)
  std::vector<std::string> senders;    // sender patterns (sender_pattern.hpp), first match wins
  std::vector<std::size_t> upstreams;  // indices into Config::upstreams, in failover order
  // Indices into Config::chain: each upstream's endpoints, upstreams in the order above. The
  // default route lists the whole chain in chain order.
  std::vector<std::size_t> endpoints;
  int source_line = 0;  // of the [[route]] table; 0 for the default route
};

// The first route with a pattern that matches `sender`; nullptr when none does (the null
// sender matches none).
const Route* choose_route(const std::vector<Route>& routes, std::string_view sender);
// The route called `name`, or nullptr (a name a reload removed; "" and "default" too).
const Route* find_route(const std::vector<Route>& routes, std::string_view name);
// The default route over a chain of `endpoints` endpoints: all of them, in chain order.
Route default_route(std::size_t endpoints);
// A label-safe route name made from its first sender pattern ("*@shop.example.com" ->
// "shop.example.com"), at most 48 characters; "route-N" (N from 1) when nothing is left.
std::string derived_route_name(std::string_view first_pattern, std::size_t position);

}  // namespace portrelay::config
