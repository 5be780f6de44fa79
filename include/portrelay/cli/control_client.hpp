#pragma once
// The CLI's end of the daemon's control socket (spool/control_server.hpp): one request line,
// one answer, for `portrelay queue` and `portrelay reload`.
#include <chrono>
#include <string>

namespace portrelay::cli {

struct ControlExchange {
  bool connected = false;  // false: nothing listens there (no daemon, or not ours to reach)
  std::string answer;      // what came back, trailing line ends removed; "" for nothing
  std::string problem;     // why not connected, or why the answer is empty
};

// Connects, sends `request` and a newline, and reads until the daemon closes the connection
// (it does after its one answer line), at most 64 KiB and at most `limit`.
ControlExchange ask_control(const std::string& socket_path, const std::string& request,
                            std::chrono::seconds limit);

}  // namespace portrelay::cli
