// The log sink: the process-wide settings and the write to stderr. Lines are spelled in
// log_format.cpp.
#include "portrelay/base/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
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

// Writes `value` as exactly `width` decimal digits ending at out + width.
void put_digits(char* out, int value, int width) {
  for (int i = width - 1; i >= 0; --i, value /= 10) out[i] = static_cast<char>('0' + value % 10);
}

// RFC 3339 UTC with milliseconds, "2026-11-23T06:50:01.123Z" (24 characters). Formatted by
// hand, and gmtime_r only when the second changes: snprintf and gmtime_r were most of a log
// line's cost.
struct Timestamp {
  char text[25];
  std::string_view view() const { return {text, 24}; }
};

Timestamp timestamp() {
  auto now = std::chrono::system_clock::now();
  auto seconds = std::chrono::system_clock::to_time_t(now);
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  thread_local std::time_t cached_second = -1;
  thread_local char cached[] = "0000-00-00T00:00:00";
  if (seconds != cached_second) {
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    put_digits(cached, (utc.tm_year + 1900) % 10000, 4);
    put_digits(cached + 5, utc.tm_mon + 1, 2);
    put_digits(cached + 8, utc.tm_mday, 2);
    put_digits(cached + 11, utc.tm_hour, 2);
    put_digits(cached + 14, utc.tm_min, 2);
    put_digits(cached + 17, utc.tm_sec, 2);
    cached_second = seconds;
  }
  Timestamp out;
  std::memcpy(out.text, cached, 19);
  std::memcpy(out.text + 19, ".000Z", 6);
  put_digits(out.text + 20, static_cast<int>(millis.count()), 3);
  return out;
}

// One fwrite under the lock: lines from different threads never interleave.
void emit(std::string_view bytes) {
  if (bytes.empty()) return;
  std::lock_guard lock(g_mutex);
  std::fwrite(bytes.data(), 1, bytes.size(), stderr);
}

constexpr std::size_t kBatchLimit = 64 * 1024;

// A loop thread's pending lines (begin_batching). The destructor writes what is left when
// the thread ends (for the main thread: at exit).
struct Batch {
  bool on = false;
  std::string lines;
  ~Batch() { emit(lines); }
};
thread_local Batch t_batch;

}  // namespace

void set_min_level(Level level) { g_min_level = static_cast<int>(level); }
void set_format(Format format) { g_format = static_cast<int>(format); }
void set_journal_prefix(bool enabled) { g_journal_prefix = enabled; }
void set_enabled(bool enabled) { g_enabled = enabled; }
void set_transcript(bool on) { g_transcript = on; }
bool transcript() { return g_transcript; }

void write(Level level, std::string_view event, std::initializer_list<Field> fields) {
  if (!g_enabled || static_cast<int>(level) < g_min_level) return;
  const Timestamp now = timestamp();
  const auto format = static_cast<Format>(g_format.load());
  if (t_batch.on) {
    append_line(t_batch.lines, format, g_journal_prefix, level, now.view(), event, fields);
    if (level == Level::Error || t_batch.lines.size() >= kBatchLimit) flush_batch();
    return;
  }
  thread_local std::string line;  // its capacity is kept from line to line
  line.clear();
  append_line(line, format, g_journal_prefix, level, now.view(), event, fields);
  emit(line);
}

void begin_batching() { t_batch.on = true; }

void flush_batch() {
  if (t_batch.lines.empty()) return;
  emit(t_batch.lines);
  t_batch.lines.clear();
}

void end_batching() {
  flush_batch();
  t_batch.on = false;
}

}  // namespace portrelay::log
