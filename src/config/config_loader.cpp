// TOML text -> validated Config. Section parsers live next to this file; this one handles the
// document as a whole: syntax errors, the set of top-level tables, reading the file.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "sections.hpp"

namespace portrelay::config {
namespace {

const std::vector<std::string_view> kTopLevelTables = {"server",  "relay", "upstream",
                                                       "metrics", "spool", "log"};

// The table for `name`, or an empty one when the file does not have it (all defaults).
const toml::table& section(const detail::ParseContext& context, const toml::table& root,
                           std::string_view name) {
  static const toml::table kEmpty;
  const toml::node* node = root.get(name);
  if (node == nullptr) return kEmpty;
  if (!node->is_table()) {
    throw context.error(node->source(), std::string(name) + ": expected a table [" +
                                            std::string(name) + "], got " +
                                            std::string(detail::type_name(*node)));
  }
  return *node->as_table();
}

void reject_unknown_tables(const detail::ParseContext& context, const toml::table& root) {
  const toml::key* unknown = detail::first_unknown_key(root, kTopLevelTables);
  if (unknown == nullptr) return;
  std::string message = "unknown table [" + std::string(unknown->str()) + "]";
  if (auto suggestion = detail::closest_key(unknown->str(), kTopLevelTables)) {
    message += "; did you mean [" + std::string(*suggestion) + "]?";
  }
  throw context.error(unknown->source(), message);
}

}  // namespace

Config parse_config(std::string_view toml_text, const std::string& source_name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, std::string_view(source_name));
  } catch (const toml::parse_error& error) {
    throw ConfigError(source_name, static_cast<int>(error.source().begin.line),
                      static_cast<int>(error.source().begin.column),
                      std::string(error.description()));
  }

  detail::ParseContext context(source_name);
  reject_unknown_tables(context, root);
  Config config;
  config.source = source_name;
  config.server = detail::parse_server_section(context, section(context, root, "server"));
  config.relay =
      detail::parse_relay_section(context, section(context, root, "relay"), config.server);
  config.metrics =
      detail::parse_metrics_section(context, section(context, root, "metrics"), config.server);
  config.spool = detail::parse_spool_section(context, section(context, root, "spool"));
  config.log = detail::parse_log_section(context, section(context, root, "log"));
  // Last: a missing [[upstream]] has no position, so errors that have one are reported first.
  config.chain = detail::parse_upstream_chain(context, root.get("upstream"));
  config.warnings = context.take_warnings();
  return config;
}

Config load_config_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ConfigError(path, 0, 0, std::string("cannot read: ") + std::strerror(errno));
  std::string text;
  char buffer[16384];
  for (;;) {
    const ssize_t count = ::read(fd, buffer, sizeof buffer);
    if (count == 0) break;
    if (count < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      ::close(fd);
      throw ConfigError(path, 0, 0, std::string("cannot read: ") + std::strerror(error));
    }
    text.append(buffer, static_cast<std::size_t>(count));
  }
  ::close(fd);
  return parse_config(text, path);
}

}  // namespace portrelay::config
