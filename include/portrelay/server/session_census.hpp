#pragma once
// server::SessionCensus: the session counts of every loop's SubmissionServer, so that
// max_sessions, max_sessions_before_mail and max_sessions_per_address bound the daemon,
// not each loop ([server] workers). Sharing, not dividing: the kernel spreads connections
// over the loops' sockets by a hash, unevenly, so a limit divided by the loops would refuse
// clients while other loops have room.
//
// Each loop counts its own sessions exactly when it accepts (as with one loop) and reads
// the others' from here: live and before-MAIL as each loop counted them at its last accept,
// session end or session sending MAIL (or authenticating). Loops accepting at the same
// instant may together go over a limit by at most one session each. Only a loop's own idle
// sessions can be shed to make room: a client on a loop with none is refused even when
// another loop has one.
//
// Thread-safe: one mutex, held for a few additions. With one loop nothing is shared and
// nothing is locked.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace portrelay::server {

class SessionCensus {
 public:
  explicit SessionCensus(std::size_t loops);

  struct Counts {
    std::size_t live = 0;
    std::size_t before_mail = 0;
    std::size_t from_address = 0;  // sessions from the client address asked about
  };
  std::size_t loops() const { return slots_.size(); }
  // 1, 2, 3, ...: the number in each session's id ("s12"), unique in the daemon. Any thread.
  std::uint64_t next_session_number() {
    return next_session_.fetch_add(1, std::memory_order_relaxed);
  }
  // Every loop's published counts but `loop`'s own; `from_address` for `client_ip`.
  Counts others(std::size_t loop, const std::string& client_ip) const;
  // `loop` counted its live and before-MAIL sessions.
  void publish(std::size_t loop, std::size_t live, std::size_t before_mail);
  // A session from `client_ip` began / ended on `loop`.
  void session_started(std::size_t loop, const std::string& client_ip);
  void session_ended(std::size_t loop, const std::string& client_ip);
  // Sessions loop `loop` has taken since start (several loops only: tests and logs see how
  // the kernel spread the clients).
  std::size_t started(std::size_t loop) const;

 private:
  struct Slot {
    std::size_t live = 0;
    std::size_t before_mail = 0;
    std::size_t started = 0;
    std::unordered_map<std::string, std::size_t> by_address;
  };
  mutable std::mutex mutex_;
  std::vector<Slot> slots_;
  std::atomic<std::uint64_t> next_session_{1};
};

}  // namespace portrelay::server
