// [[route]] tables -> Config::routes (docs/CONFIGURATION.md, "Routing by sender").
#include <set>
#include <string>

#include "portrelay/config/route.hpp"
#include "portrelay/config/sender_pattern.hpp"
#include "sections.hpp"
#include "value_checks.hpp"

namespace portrelay::config::detail {
namespace {

std::string upstream_names(const std::vector<Upstream>& upstreams) {
  std::string names;
  for (const Upstream& upstream : upstreams)
    names += (names.empty() ? "\"" : ", \"") + upstream.name + "\"";
  return names;
}

Route parse_route(ParseContext& context, const toml::table& table,
                  const std::vector<Upstream>& upstreams, std::size_t position,
                  const std::set<std::string>& taken) {
  const TableReader reader(context, table, "route", "[[route]]", {"name", "senders", "upstreams"});
  Route route;
  route.source_line = static_cast<int>(table.source().begin.line);

  const auto senders = reader.string_array("senders");
  if (!senders || senders->empty()) {
    if (senders) reader.fail("senders", *reader.find("senders"), "lists no sender pattern");
    reader.fail_table(
        "route.senders: missing (senders = [\"*@shop.example.com\", \"billing@example.com\"])");
  }
  for (const StringItem& item : *senders) {
    if (const std::string problem = sender_pattern_problem(item.value); !problem.empty())
      reader.fail("senders", *item.node, "\"" + item.value + "\" " + problem);
    route.senders.push_back(item.value);
  }

  const auto names = reader.string_array("upstreams");
  if (!names || names->empty()) {
    if (names) reader.fail("upstreams", *reader.find("upstreams"), "lists no upstream");
    reader.fail_table("route.upstreams: missing (the [[upstream]] names, in failover order: " +
                      upstream_names(upstreams) + ")");
  }
  for (const StringItem& item : *names) {
    const Upstream* found = nullptr;
    for (const Upstream& upstream : upstreams)
      if (upstream.name == item.value) found = &upstream;
    if (found == nullptr)
      reader.fail("upstreams", *item.node,
                  "\"" + item.value + "\" is not the name of an [[upstream]] (known: " +
                      upstream_names(upstreams) + ")");
    for (std::size_t earlier : route.upstreams)
      if (earlier == found->index)
        reader.fail("upstreams", *item.node, "\"" + item.value + "\" is listed twice");
    route.upstreams.push_back(found->index);
    for (std::size_t endpoint : found->endpoints) route.endpoints.push_back(endpoint);
  }

  if (const auto name = reader.string("name")) {
    const toml::node& at = *reader.find("name");
    if (!is_valid_label(*name))
      reader.fail(
          "name", at,
          "\"" + *name + "\" is not usable as a metrics label (up to 64 of A-Z a-z 0-9 _ . : -)");
    if (*name == kDefaultRouteName)
      reader.fail("name", at,
                  "\"default\" is the name of the route of messages no [[route]] matches");
    if (taken.count(*name)) reader.fail("name", at, "\"" + *name + "\" names another [[route]]");
    route.name = *name;
  } else {
    const std::string base = derived_route_name(route.senders.front(), position + 1);
    route.name = base;
    for (int suffix = 2; taken.count(route.name); ++suffix)
      route.name = base + "-" + std::to_string(suffix);
  }
  return route;
}

}  // namespace

std::vector<Route> parse_routes(ParseContext& context, const toml::node* node,
                                const std::vector<Upstream>& upstreams) {
  std::vector<Route> routes;
  if (node == nullptr) return routes;
  if (node->is_table())
    throw context.error(node->source(), "route: write [[route]] (an array of tables), not [route]");
  if (!node->is_array_of_tables())
    throw context.error(node->source(),
                        "route: expected [[route]] tables, got " + std::string(type_name(*node)));
  std::set<std::string> taken;
  // Named routes first, so a derived name never takes a name written further down.
  for (const toml::node& element : *node->as_array())
    if (const auto name = element.as_table()->get("name"); name && name->is_string())
      taken.insert(name->as_string()->get());
  std::set<std::string> used;
  for (const toml::node& element : *node->as_array()) {
    std::set<std::string> unavailable = used;
    const bool named = element.as_table()->contains("name");
    if (!named) unavailable.insert(taken.begin(), taken.end());
    Route route = parse_route(context, *element.as_table(), upstreams, routes.size(), unavailable);
    used.insert(route.name);
    routes.push_back(std::move(route));
  }
  return routes;
}

}  // namespace portrelay::config::detail
