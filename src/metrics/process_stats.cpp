#include "portrelay/metrics/process_stats.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace portrelay::metrics {
namespace {

std::optional<std::string> read_file(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

template <typename Number>
bool to_number(std::string_view text, Number& out) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size();
}

std::vector<std::string_view> split_spaces(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t start = text.find_first_not_of(" \n", at);
    if (start == std::string_view::npos) break;
    std::size_t end = text.find_first_of(" \n", start);
    if (end == std::string_view::npos) end = text.size();
    words.push_back(text.substr(start, end - start));
    at = end;
  }
  return words;
}

}  // namespace

std::optional<ProcStat> parse_proc_stat(std::string_view text) {
  const std::size_t name_end = text.rfind(')');
  if (name_end == std::string_view::npos) return std::nullopt;
  // After ")" comes field 3 (state); field n is words[n - 3].
  const auto words = split_spaces(text.substr(name_end + 1));
  auto field = [&words](std::size_t n) { return words.at(n - 3); };
  if (words.size() < 24 - 2) return std::nullopt;
  ProcStat stat;
  if (!to_number(field(14), stat.user_ticks) || !to_number(field(15), stat.system_ticks) ||
      !to_number(field(22), stat.start_ticks) || !to_number(field(23), stat.virtual_bytes) ||
      !to_number(field(24), stat.resident_pages))
    return std::nullopt;
  return stat;
}

std::optional<long long> parse_boot_time(std::string_view proc_stat) {
  for (std::size_t at = 0; at < proc_stat.size();) {
    std::size_t end = proc_stat.find('\n', at);
    if (end == std::string_view::npos) end = proc_stat.size();
    const auto words = split_spaces(proc_stat.substr(at, end - at));
    long long seconds = 0;
    if (words.size() == 2 && words[0] == "btime" && to_number(words[1], seconds)) return seconds;
    at = end + 1;
  }
  return std::nullopt;
}

std::optional<ProcessStats> read_process_stats() {
  const auto self = read_file("/proc/self/stat");
  const auto system = read_file("/proc/stat");
  if (!self || !system) return std::nullopt;
  const auto stat = parse_proc_stat(*self);
  const auto boot = parse_boot_time(*system);
  const long ticks = sysconf(_SC_CLK_TCK);
  const long page = sysconf(_SC_PAGESIZE);
  if (!stat || !boot || ticks <= 0 || page <= 0) return std::nullopt;

  ProcessStats out;
  const double per_tick = 1.0 / static_cast<double>(ticks);
  out.cpu_seconds = static_cast<double>(stat->user_ticks + stat->system_ticks) * per_tick;
  out.resident_bytes = static_cast<double>(stat->resident_pages) * static_cast<double>(page);
  out.virtual_bytes = static_cast<double>(stat->virtual_bytes);
  out.start_time_seconds =
      static_cast<double>(*boot) + static_cast<double>(stat->start_ticks) * per_tick;
  std::error_code error;
  std::size_t fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", error), end; !error && it != end;
       it.increment(error))
    ++fds;
  // The iterator's own descriptor was open while counting.
  out.open_fds = static_cast<double>(fds > 0 ? fds - 1 : 0);
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0)
    out.max_fds = limit.rlim_cur == RLIM_INFINITY ? 0 : static_cast<double>(limit.rlim_cur);
  return out;
}

}  // namespace portrelay::metrics
