// The log sink: the process-wide settings and the write to stderr. Lines are spelled in
// log_format.cpp.
#include "portrelay/base/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace portrelay::log {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::Info)};
std::atomic<int> g_format{static_cast<int>(Format::Logfmt)};
std::atomic<bool> g_journal_prefix{false};
std::atomic<bool> g_enabled{true};
std::atomic<bool> g_transcript{false};
std::mutex g_mutex;

std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  auto seconds = std::chrono::system_clock::to_time_t(now);
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[64];  // roomy enough that -Wformat-truncation can prove it fits
  std::snprintf(buffer, sizeof(buffer), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(millis.count()));
  return buffer;
}

}  // namespace

void set_min_level(Level level) { g_min_level = static_cast<int>(level); }
void set_format(Format format) { g_format = static_cast<int>(format); }
void set_journal_prefix(bool enabled) { g_journal_prefix = enabled; }
void set_enabled(bool enabled) { g_enabled = enabled; }
void set_transcript(bool on) { g_transcript = on; }
bool transcript() { return g_transcript; }

void write(Level level, std::string_view event, std::initializer_list<Field> fields) {
  if (!g_enabled || static_cast<int>(level) < g_min_level) return;
  const std::string line = format_line(static_cast<Format>(g_format.load()), g_journal_prefix,
                                       level, timestamp(), event, fields);
  // One fwrite per line under the lock: lines from different threads never interleave.
  std::lock_guard lock(g_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace portrelay::log
