// [aliases]: local name = "address" or ["address", ...], and aliases_file (Debian's
// /etc/aliases, read at each load) (docs/CONFIGURATION.md).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "portrelay/base/ascii.hpp"
#include "portrelay/config/alias_table.hpp"
#include "portrelay/config/aliases_file.hpp"
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

// An aliases file is a few hundred lines; a path to something else must not be read whole.
constexpr std::size_t kMaxAliasesFile = 1024 * 1024;

// The file named by `aliases_file`, parsed; its warnings go to `check`.
AliasesFile read_aliases_file(ParseContext& context, const toml::node& node) {
  const auto* path = node.as_string();
  if (path == nullptr || path->get().empty() || path->get().front() != '/')
    throw context.error(node.source(),
                        "aliases.aliases_file: expected an absolute path (a string), such as "
                        "\"/etc/aliases\"");
  const std::string& name = path->get();
  const int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    throw context.error(node.source(), "aliases.aliases_file: cannot read \"" + name +
                                           "\": " + std::strerror(errno));
  struct stat info {};
  std::string text;
  if (::fstat(fd, &info) == 0 && S_ISREG(info.st_mode)) {
    char buffer[4096];
    ssize_t count;
    while (text.size() <= kMaxAliasesFile && (count = ::read(fd, buffer, sizeof buffer)) > 0)
      text.append(buffer, static_cast<std::size_t>(count));
  }
  ::close(fd);
  if (!S_ISREG(info.st_mode))
    throw context.error(node.source(),
                        "aliases.aliases_file: \"" + name + "\" is not a regular file");
  if (text.size() > kMaxAliasesFile)
    throw context.error(node.source(), "aliases.aliases_file: \"" + name + "\" is over 1 MiB");
  AliasesFile file = parse_aliases_file(text, name);
  for (std::string& warning : file.warnings) context.warn_as_is(std::move(warning));
  return file;
}

}  // namespace

AliasTable parse_aliases_section(ParseContext& context, const toml::table& table,
                                 const RewriteConfig& rewrite) {
  AliasTable::Entries entries;
  for (const auto& [key, node] : table) {
    const std::string name(key.str());
    if (name == "aliases_file") continue;  // the one key that is not a local name
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
  std::string from_file;
  if (const toml::node* file_node = table.get("aliases_file")) {
    // The inline keys win: they are written for portrelay, the file is the system's.
    AliasesFile file = read_aliases_file(context, *file_node);
    from_file = " (with aliases_file " + file_node->as_string()->get() + ")";
    AliasTable inline_only(entries, LocalDomains());
    for (auto& [name, targets] : file.entries)
      if (inline_only.entries().count(ascii::lower(name)) == 0) entries[name] = std::move(targets);
  }
  AliasTable aliases(std::move(entries), LocalDomains(rewrite.local_domains));
  if (const std::string loop = aliases.find_loop(); !loop.empty())
    throw context.error(table.source(), "aliases: " + loop + " is a loop" + from_file);
  return aliases;
}

}  // namespace portrelay::config::detail
