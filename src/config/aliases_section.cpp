// [aliases]: local name = "address" or ["address", ...] (docs/CONFIGURATION.md).
#include <string>

#include "portrelay/config/alias_table.hpp"
#include "sections.hpp"

namespace portrelay::config::detail {
namespace {

// An envelope address as written in a config file: no spaces, no angle brackets, no
// control characters, and a domain after '@' when there is one.
bool is_plausible_address(std::string_view text) {
  if (text.empty() || text.size() > 254) return false;
  for (char c : text)
    if (static_cast<unsigned char>(c) <= ' ' || c == '<' || c == '>' || c == 0x7f) return false;
  const std::size_t at = text.rfind('@');
  return at == std::string_view::npos || (at > 0 && at + 1 < text.size());
}

}  // namespace

AliasTable parse_aliases_section(ParseContext& context, const toml::table& table,
                                 const RewriteConfig& rewrite) {
  AliasTable::Entries entries;
  for (const auto& [key, node] : table) {
    const std::string name(key.str());
    const std::string where = "aliases." + name;
    if (!is_plausible_address(name) || name.find('@') != std::string::npos)
      throw context.error(key.source(),
                          where + ": \"" + name + "\" is not a local name (write root = ...)");
    std::vector<std::string>& targets = entries[name];
    auto add = [&](const toml::node& value) {
      const auto* text = value.as_string();
      if (text == nullptr)
        throw context.error(value.source(), where +
                                                ": expected an address or an array of "
                                                "addresses, got " +
                                                std::string(type_name(value)));
      if (!is_plausible_address(text->get()))
        throw context.error(value.source(), where + ": \"" + text->get() + "\" is not an address");
      targets.push_back(text->get());
    };
    if (const auto* array = node.as_array()) {
      if (array->empty()) throw context.error(node.source(), where + ": lists no address");
      for (const toml::node& element : *array) add(element);
    } else {
      add(node);
    }
  }
  AliasTable aliases(std::move(entries), LocalDomains(rewrite.local_domains));
  if (const std::string loop = aliases.find_loop(); !loop.empty())
    throw context.error(table.source(), "aliases: " + loop + " is a loop");
  return aliases;
}

}  // namespace portrelay::config::detail
