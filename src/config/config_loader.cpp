// TOML text -> validated Config. Section parsers live next to this file; this one handles the
// document as a whole: syntax errors, the set of top-level tables, reading the file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "sections.hpp"

namespace portrelay::config {
namespace {

const std::vector<std::string_view> kTopLevelTables = {"env_file", "server", "relay", "upstream",
                                                       "metrics",  "spool",  "log",   "rewrite",
                                                       "aliases",  "route"};

// A secrets file is a few lines; a path to something else must not be read into memory.
constexpr std::size_t kMaxEnvFile = 1024 * 1024;

// Top level, not in a table: the file serves every section that names a variable (today
// [[upstream]] password_env), not one of them. Read at each load, so `probe`, `check`,
// the daemon and its reloads see the same secrets without systemd's EnvironmentFile=.
void read_env_file(detail::ParseContext& context, const toml::table& root, Config& config) {
  const toml::node* node = root.get("env_file");
  if (node == nullptr) return;
  const auto path = node->value<std::string>();
  if (!node->is_string() || path->empty() || path->front() != '/')
    throw context.error(node->source(), "env_file: expected an absolute path (a string)");
  config.env_file = *path;
  const int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0 && errno == ENOENT) {
    // As systemd's EnvironmentFile=-: a fresh install has not written its secrets yet.
    context.warn(node->source(), "env_file \"" + *path + "\" does not exist");
    return;
  }
  if (fd < 0)
    throw context.error(node->source(),
                        "env_file: cannot read \"" + *path + "\": " + std::strerror(errno));
  struct stat info {};
  std::string text;
  if (::fstat(fd, &info) == 0 && S_ISREG(info.st_mode)) {
    char buffer[4096];
    ssize_t count;
    while (text.size() <= kMaxEnvFile && (count = ::read(fd, buffer, sizeof buffer)) > 0)
      text.append(buffer, static_cast<std::size_t>(count));
  }
  ::close(fd);
  if (!S_ISREG(info.st_mode))
    throw context.error(node->source(), "env_file: \"" + *path + "\" is not a regular file");
  if (text.size() > kMaxEnvFile)
    throw context.error(node->source(), "env_file: \"" + *path + "\" is over 1 MiB");
  // Group-readable is the documented setup (0640 root:portrelay: the service reads it
  // through its group); readable by everyone is not.
  if ((info.st_mode & S_IROTH) != 0)
    context.warn(node->source(), "env_file \"" + *path +
                                     "\" is readable by every user; restrict it (chmod 640, "
                                     "group portrelay)");
  context.set_env_file(parse_env_file(text, *path));
}

// An inline secret in a file other users may read: `check` says so, with the file's mode.
void warn_inline_secret(const std::string& path, Config& config) {
  bool inline_password = false;
  for (const auto& endpoint : config.chain)
    inline_password = inline_password || !endpoint.credentials.password.empty();
  struct stat info {};
  if (!inline_password || ::stat(path.c_str(), &info) != 0) return;
  if ((info.st_mode & (S_IRGRP | S_IROTH)) == 0) return;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
  config.warnings.push_back(path + ": holds an inline password and is readable by " +
                            ((info.st_mode & S_IROTH) ? "every user" : "its group") + " (mode " +
                            mode +
                            "); move the password to env_file or password_file, or "
                            "chmod 600 this file");
}

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
  read_env_file(context, root, config);  // before [[upstream]], whose password_env reads it
  config.server = detail::parse_server_section(context, section(context, root, "server"));
  config.relay =
      detail::parse_relay_section(context, section(context, root, "relay"), config.server);
  config.metrics =
      detail::parse_metrics_section(context, section(context, root, "metrics"), config.server);
  config.spool = detail::parse_spool_section(context, section(context, root, "spool"));
  config.log = detail::parse_log_section(context, section(context, root, "log"));
  config.rewrite =
      detail::parse_rewrite_section(context, section(context, root, "rewrite"), config.server);
  config.aliases =
      detail::parse_aliases_section(context, section(context, root, "aliases"), config.rewrite);
  // Last: a missing [[upstream]] has no position, so errors that have one are reported first.
  config.chain = detail::parse_upstream_chain(context, root.get("upstream"));
  config.upstreams = detail::group_upstreams(config.chain);
  config.routes = detail::parse_routes(context, root.get("route"), config.upstreams);
  if (config.relay.require_route && config.routes.empty()) {
    const toml::node* at = root.at_path("relay.require_route").node();
    throw context.error(at->source(),
                        "relay.require_route: needs at least one [[route]] (every message "
                        "would be refused)");
  }
  if (const toml::node* file = root.at_path("aliases.aliases_file").node();
      file && file->is_string())
    config.aliases_file = file->as_string()->get();
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
  Config config = parse_config(text, path);
  warn_inline_secret(path, config);
  return config;
}

}  // namespace portrelay::config
