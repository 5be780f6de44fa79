#pragma once
// The RecipientWindow of each upstream on disk: `<dir>/<upstream>.window` (dir: the spool's
// "limits" subdirectory), so that a restart does not reset max_recipients_per_day.
//
// Written crash-safe: a temporary file, fsync, rename over the old one, fsync of the
// directory. A reader sees the old window or the new one, never half of one. A missing or
// unreadable file starts the window empty, with a log line (never a refusal to start: the
// provider's own quota reply still pauses the upstream).
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "portrelay/relay/recipient_window.hpp"

namespace portrelay::relay {

// The file's name for an upstream: its name with every octet outside [A-Za-z0-9._-]
// written %XX, then ".window".
std::string recipient_window_file_name(const std::string& upstream);

RecipientWindow load_recipient_window(const std::string& dir, const std::string& upstream,
                                      RecipientWindow::Minutes now);
// Creates `dir` (0700) if missing. False, with a log line, when the window could not be
// written (the count in memory stays right; the next write tries again).
bool save_recipient_window(const std::string& dir, const std::string& upstream,
                           const RecipientWindow& window, RecipientWindow::Minutes now);
// The same for a window already serialised.
bool save_recipient_window_text(const std::string& dir, const std::string& upstream,
                                const std::string& text);

// Saves windows on a thread of its own, for the event loop: the fsyncs of a save wait for
// the disk, and on a disk another program keeps busy (a backup, a database) that takes up
// to a second, during which no client would be served. One writer for the process, so the
// selectors before and after a reload never write one file at once. A save still queued
// for an upstream is replaced by a newer one; what is queued at exit is written then.
class RecipientWindowWriter {
 public:
  static RecipientWindowWriter& shared();
  ~RecipientWindowWriter();
  // Serialises `window` now (the caller's thread) and queues the write.
  void save(const std::string& dir, const std::string& upstream, const RecipientWindow& window,
            RecipientWindow::Minutes now);
  void flush();  // waits until everything queued so far is written (tests)

 private:
  RecipientWindowWriter();
  void run();

  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::pair<std::string, std::string>, std::string> queued_;  // (dir, upstream) -> text
  bool writing_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace portrelay::relay
