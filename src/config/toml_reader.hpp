#pragma once
// Typed, position-aware access to one TOML table of the configuration file. Every failure is
// a ConfigError pointing at the offending key or value, named by its dotted path
// ("relay.stagger"). Private to src/config.
#include <toml++/toml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/config/config.hpp"
#include "portrelay/config/env_file.hpp"

namespace portrelay::config::detail {

// Shared by every section of one parse: where errors point to and where warnings go.
class ParseContext {
 public:
  explicit ParseContext(std::string source) : source_(std::move(source)) {}
  const std::string& source() const { return source_; }

  ConfigError error(const toml::source_region& where, const std::string& message) const;
  // Warnings carry only the line: they are read by people, not by editors jumping to a column.
  void warn(const toml::source_region& where, const std::string& message);
  // A warning that names its own place (another file's "path:line: ...").
  void warn_as_is(std::string message) { warnings_.push_back(std::move(message)); }
  std::vector<std::string> take_warnings() { return std::move(warnings_); }
  // The env_file's values, which *_env keys look up before the process environment.
  void set_env_file(EnvFileValues values) {
    env_file_ = std::move(values);
    env_file_read_ = true;
  }
  bool env_file_read() const { return env_file_read_; }
  const std::string* env_file_value(const std::string& name) const {
    auto it = env_file_.find(name);
    return it == env_file_.end() ? nullptr : &it->second;
  }

 private:
  std::string source_;
  EnvFileValues env_file_;
  bool env_file_read_ = false;
  std::vector<std::string> warnings_;
};

// One string element of an array, with the node for error positions.
struct StringItem {
  std::string value;
  const toml::node* node;
};

class TableReader {
 public:
  // Throws for the first (in file order) key that is not in `known_keys`, suggesting the
  // closest known key when there is one within two edits. `path` is the dotted prefix used in
  // messages ("server"); `title` is how the table is written in the file ("[server]").
  TableReader(ParseContext& context, const toml::table& table, std::string path, std::string title,
              std::initializer_list<std::string_view> known_keys);

  ParseContext& context() const { return context_; }
  const toml::table& table() const { return table_; }
  const toml::node* find(std::string_view key) const { return table_.get(key); }
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Each returns nullopt when the key is absent and throws when it has the wrong type.
  std::optional<std::string> string(std::string_view key) const;
  std::optional<bool> boolean(std::string_view key) const;
  std::optional<std::int64_t> integer(std::string_view key) const;
  std::optional<std::vector<StringItem>> string_array(std::string_view key) const;
  // A string with units; a bare number is an error because "5" could mean seconds or minutes.
  std::optional<Duration> duration(std::string_view key) const;
  // An integer (octets) or a string with units.
  std::optional<std::uint64_t> size(std::string_view key) const;
  // A duration that must be greater than zero; `fallback` when absent.
  Duration timeout(std::string_view key, Duration fallback) const;
  // Two timeouts that bound a range (cooldown .. cooldown_max): each read as timeout(),
  // then `high` must not be shorter than `low`. The error points at `high_key` if it was
  // written, else at `low_key` (whose value then exceeds high's default).
  void timeout_range(std::string_view low_key, Duration& low, std::string_view high_key,
                     Duration& high) const;
  // An integer in [min, max]; `fallback` when absent.
  std::int64_t bounded_integer(std::string_view key, std::int64_t fallback, std::int64_t min,
                               std::int64_t max) const;

  // "server.listen: <message>" at the node's position.
  [[noreturn]] void fail(std::string_view key, const toml::node& at,
                         const std::string& message) const;
  // Same, at the position of the table itself (for missing keys and cross-key rules).
  [[noreturn]] void fail_table(const std::string& message) const;
  void warn(std::string_view key, const toml::node& at, const std::string& message) const;
  std::string qualified(std::string_view key) const;

 private:
  [[noreturn]] void fail_type(std::string_view key, const toml::node& at,
                              std::string_view expected) const;

  ParseContext& context_;
  const toml::table& table_;
  std::string path_;
  std::string title_;
};

// "integer", "string", ... as a person would call the TOML type.
std::string_view type_name(const toml::node& node);

// The key of `table` that comes first in the file among those not in `known_keys`, if any.
const toml::key* first_unknown_key(const toml::table& table,
                                   const std::vector<std::string_view>& known_keys);
// The known key within two edits of `unknown` (a typo, a swapped letter, wrong case), if any.
std::optional<std::string_view> closest_key(std::string_view unknown,
                                            const std::vector<std::string_view>& known_keys);

}  // namespace portrelay::config::detail
