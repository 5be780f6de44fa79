#pragma once
// The RecipientWindow of each upstream on disk: `<dir>/<upstream>.window` (dir: the spool's
// "limits" subdirectory), so that a restart does not reset max_recipients_per_day.
//
// Written crash-safe: a temporary file, fsync, rename over the old one, fsync of the
// directory. A reader sees the old window or the new one, never half of one. A missing or
// unreadable file starts the window empty, with a log line (never a refusal to start: the
// provider's own quota reply still pauses the upstream).
#include <string>

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

}  // namespace portrelay::relay
