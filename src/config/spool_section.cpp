// [spool]: where and how much the durable queue keeps, and its retry schedule.
#include <string>

#include "sections.hpp"

namespace portrelay::config::detail {
namespace {

constexpr std::int64_t kMaxMessages = 10'000'000;
constexpr std::int64_t kMaxDeliveries = 1024;

}  // namespace

SpoolConfig parse_spool_section(ParseContext& context, const toml::table& table) {
  const TableReader reader(
      context, table, "spool", "[spool]",
      {"dir", "max_messages", "max_bytes", "min_free_disk", "max_lifetime", "retry_min",
       "retry_max", "max_deliveries", "bounces", "failed_lifetime"});
  SpoolConfig spool;
  if (auto dir = reader.string("dir")) {
    if (dir->empty() || dir->front() != '/')
      reader.fail("dir", *reader.find("dir"), "must be an absolute path");
    spool.dir = *dir;
    while (spool.dir.size() > 1 && spool.dir.back() == '/') spool.dir.pop_back();
  }
  spool.max_messages = static_cast<std::size_t>(reader.bounded_integer(
      "max_messages", static_cast<std::int64_t>(spool.max_messages), 1, kMaxMessages));
  if (auto bytes = reader.size("max_bytes")) {
    if (*bytes == 0) reader.fail("max_bytes", *reader.find("max_bytes"), "must be above 0");
    spool.max_bytes = *bytes;
  }
  if (auto bytes = reader.size("min_free_disk")) spool.min_free_disk = *bytes;
  spool.max_lifetime = reader.timeout("max_lifetime", spool.max_lifetime);
  reader.timeout_range("retry_min", spool.retry_min, "retry_max", spool.retry_max);
  spool.max_deliveries = static_cast<std::size_t>(reader.bounded_integer(
      "max_deliveries", static_cast<std::int64_t>(spool.max_deliveries), 1, kMaxDeliveries));
  spool.bounces = reader.boolean("bounces").value_or(spool.bounces);
  spool.failed_lifetime = reader.timeout("failed_lifetime", spool.failed_lifetime);
  return spool;
}

}  // namespace portrelay::config::detail
