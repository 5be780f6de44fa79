#include "toml_reader.hpp"

#include <algorithm>
#include <limits>

namespace portrelay::config::detail {
namespace {

int line_of(const toml::source_region& where) { return static_cast<int>(where.begin.line); }
int column_of(const toml::source_region& where) { return static_cast<int>(where.begin.column); }

bool comes_before(const toml::source_position& a, const toml::source_position& b) {
  return a.line != b.line ? a.line < b.line : a.column < b.column;
}

// Plain Levenshtein distance, case-insensitive; keys are short so O(n*m) is nothing.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  const auto fold = [](char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  };
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      const std::size_t substitution = diagonal + (fold(a[i - 1]) == fold(b[j - 1]) ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitution});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

ConfigError ParseContext::error(const toml::source_region& where,
                                const std::string& message) const {
  return ConfigError(source_, line_of(where), column_of(where), message);
}

void ParseContext::warn(const toml::source_region& where, const std::string& message) {
  warnings_.push_back(source_ + ":" + std::to_string(line_of(where)) + ": " + message);
}

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "floating-point number";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

const toml::key* first_unknown_key(const toml::table& table,
                                   const std::vector<std::string_view>& known_keys) {
  const toml::key* first = nullptr;
  for (auto&& [key, node] : table) {
    if (std::find(known_keys.begin(), known_keys.end(), key.str()) != known_keys.end()) continue;
    if (first == nullptr || comes_before(key.source().begin, first->source().begin)) first = &key;
  }
  return first;
}

std::optional<std::string_view> closest_key(std::string_view unknown,
                                            const std::vector<std::string_view>& known_keys) {
  std::optional<std::string_view> best;
  std::size_t best_distance = 3;  // suggest only within two edits
  for (std::string_view known : known_keys) {
    const std::size_t distance = edit_distance(unknown, known);
    // A two-letter key is two edits away from any other two-letter key: not a suggestion.
    if (distance < best_distance && distance < unknown.size()) {
      best = known;
      best_distance = distance;
    }
  }
  return best;
}

TableReader::TableReader(ParseContext& context, const toml::table& table, std::string path,
                         std::string title, std::initializer_list<std::string_view> known_keys)
    : context_(context), table_(table), path_(std::move(path)), title_(std::move(title)) {
  const std::vector<std::string_view> known(known_keys);
  if (const toml::key* unknown = first_unknown_key(table, known)) {
    std::string message = "unknown key \"" + std::string(unknown->str()) + "\" in " + title_;
    if (auto suggestion = closest_key(unknown->str(), known)) {
      message += "; did you mean \"" + std::string(*suggestion) + "\"?";
    }
    throw context_.error(unknown->source(), message);
  }
}

std::string TableReader::qualified(std::string_view key) const {
  return path_ + "." + std::string(key);
}

void TableReader::fail(std::string_view key, const toml::node& at,
                       const std::string& message) const {
  throw context_.error(at.source(), qualified(key) + ": " + message);
}

void TableReader::fail_table(const std::string& message) const {
  throw context_.error(table_.source(), message);
}

void TableReader::warn(std::string_view key, const toml::node& at,
                       const std::string& message) const {
  context_.warn(at.source(), qualified(key) + ": " + message);
}

void TableReader::fail_type(std::string_view key, const toml::node& at,
                            std::string_view expected) const {
  fail(key, at, "expected " + std::string(expected) + ", got " + std::string(type_name(at)));
}

std::optional<std::string> TableReader::string(std::string_view key) const {
  const toml::node* node = find(key);
  if (node == nullptr) return std::nullopt;
  if (!node->is_string()) fail_type(key, *node, "a string");
  return node->as_string()->get();
}

std::optional<bool> TableReader::boolean(std::string_view key) const {
  const toml::node* node = find(key);
  if (node == nullptr) return std::nullopt;
  if (!node->is_boolean()) fail_type(key, *node, "a boolean (true or false)");
  return node->as_boolean()->get();
}

std::optional<std::int64_t> TableReader::integer(std::string_view key) const {
  const toml::node* node = find(key);
  if (node == nullptr) return std::nullopt;
  if (!node->is_integer()) fail_type(key, *node, "an integer");
  return node->as_integer()->get();
}

std::optional<std::vector<StringItem>> TableReader::string_array(std::string_view key) const {
  const toml::node* node = find(key);
  if (node == nullptr) return std::nullopt;
  if (!node->is_array()) fail_type(key, *node, "an array of strings");
  std::vector<StringItem> items;
  for (const toml::node& element : *node->as_array()) {
    if (!element.is_string()) {
      fail(key, element,
           "expected an array of strings, got an element of type " +
               std::string(type_name(element)));
    }
    items.push_back({element.as_string()->get(), &element});
  }
  return items;
}

std::optional<Duration> TableReader::duration(std::string_view key) const {
  const toml::node* node = find(key);
  if (node == nullptr) return std::nullopt;
  constexpr std::string_view kHint = "(use units like \"250ms\", \"10s\", \"5m\")";
  if (!node->is_string()) {
    fail(key, *node,
         "expected a duration string, got " + std::string(type_name(*node)) + " " +
             std::string(kHint));
  }
  const std::string& text = node->as_string()->get();
  const auto value = parse_duration(text);
  if (!value) fail(key, *node, "\"" + text + "\" is not a duration " + std::string(kHint));
  return value;
}

std::optional<std::uint64_t> TableReader::size(std::string_view key) const {
  const toml::node* node = find(key);
  if (node == nullptr) return std::nullopt;
  if (node->is_integer()) {
    const std::int64_t value = node->as_integer()->get();
    if (value < 0) fail(key, *node, std::to_string(value) + " is negative");
    return static_cast<std::uint64_t>(value);
  }
  if (!node->is_string()) {
    fail_type(key, *node, "an integer or a size string like \"25MiB\"");
  }
  const std::string& text = node->as_string()->get();
  const auto value = parse_size(text);
  if (!value) {
    fail(key, *node,
         "\"" + text + "\" is not a size (use bytes or units like \"512KiB\", \"25MiB\", " +
             "\"10MB\")");
  }
  return value;
}

Duration TableReader::timeout(std::string_view key, Duration fallback) const {
  const auto value = duration(key);
  if (!value) return fallback;
  if (value->count() == 0) fail(key, *find(key), "must be greater than 0");
  return *value;
}

void TableReader::timeout_range(std::string_view low_key, Duration& low, std::string_view high_key,
                                Duration& high) const {
  low = timeout(low_key, low);
  high = timeout(high_key, high);
  if (high >= low) return;
  if (has(high_key))
    fail(high_key, *find(high_key), "must not be shorter than " + qualified(low_key));
  fail(low_key, *find(low_key),
       "is longer than " + qualified(high_key) + " (" + format_duration(high) +
           " by default); set " + std::string(high_key) + " too");
}

std::int64_t TableReader::bounded_integer(std::string_view key, std::int64_t fallback,
                                          std::int64_t min, std::int64_t max) const {
  const auto value = integer(key);
  if (!value) return fallback;
  if (*value < min || *value > max) {
    const std::string bounds =
        max == std::numeric_limits<std::int64_t>::max()
            ? "must be at least " + std::to_string(min)
            : "must be between " + std::to_string(min) + " and " + std::to_string(max);
    fail(key, *find(key), std::to_string(*value) + " is out of range (" + bounds + ")");
  }
  return *value;
}

}  // namespace portrelay::config::detail
