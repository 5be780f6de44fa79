#pragma once
// The standard process_* metrics (Prometheus client conventions), read from /proc/self at
// scrape time. Parsing is pure so it is tested on fixed text.
#include <optional>
#include <string_view>

namespace portrelay::metrics {

// The fields of /proc/<pid>/stat that process_* needs, in the kernel's units.
struct ProcStat {
  unsigned long long user_ticks = 0;     // utime (field 14), clock ticks
  unsigned long long system_ticks = 0;   // stime (field 15)
  unsigned long long start_ticks = 0;    // starttime (field 22), ticks after boot
  unsigned long long virtual_bytes = 0;  // vsize (field 23)
  long long resident_pages = 0;          // rss (field 24)
};

// nullopt unless `text` is a complete stat line. The command name (field 2) is in
// parentheses and may itself contain spaces and ')', so fields are counted from the last ')'.
std::optional<ProcStat> parse_proc_stat(std::string_view text);
// The "btime" line of /proc/stat: the boot time, in Unix seconds.
std::optional<long long> parse_boot_time(std::string_view proc_stat);

struct ProcessStats {
  double cpu_seconds = 0;
  double resident_bytes = 0;
  double virtual_bytes = 0;
  double start_time_seconds = 0;  // Unix time
  double open_fds = 0;
  double max_fds = 0;  // the soft RLIMIT_NOFILE
};

// This process, now; nullopt if /proc is not readable (then process_* is not exported).
std::optional<ProcessStats> read_process_stats();

}  // namespace portrelay::metrics
