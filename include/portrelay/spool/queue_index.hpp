#pragma once
// spool::QueueIndex: what the spool knows of every message it holds, in memory. Pure: no
// files, no clock, no delivery; the spool's glue changes it and carries out the I/O.
//
//  * An entry is the message's envelope and layout (never its body), its delivery state
//    (spool_record.hpp) and where it stands (QueueEntry::Stage).
//  * Due order: the entries that wait for an attempt (Waiting, WaitingForChain), by
//    next attempt, then arrival, then id. Oldest first among new and retried messages
//    alike: a new message is due from its arrival.
//  * Arrival order: every entry in queue/ (not failed/), oldest first, for the age of the
//    queue.
//  * Counts for the gauges: queue/ entries never tried (queued) or tried (deferred), the
//    entries in failed/, and the octets of queue/'s files.
//
// Every change goes through a method, which keeps the orders and counts in step with the
// entries: due order holds exactly the waiting entries, arrival order and the counts
// exactly those in queue/.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>

#include "portrelay/spool/spool_record.hpp"

namespace portrelay::spool {

struct QueueEntry {
  // Where a message stands. One at a time: the four flags this replaces (in flight,
  // bouncing, failed, waiting for the chain) were never meant to combine.
  enum class Stage {
    Waiting,          // in queue/, due at state.next_attempt_ms
    WaitingForChain,  // the same, and its last attempt found no endpoint to take it: due
                      // at once when an endpoint comes back
    InFlight,         // a delivery attempt runs
    Bouncing,         // settled; its bounce is being stored: nothing else may touch it
    Failed,           // in failed/ (kept after a permanent failure), since failed_at_ms
  };

  RecordLayout layout;
  DeliveryState state;
  Stage stage = Stage::Waiting;
  std::int64_t failed_at_ms = 0;  // Failed only

  const std::string& id() const { return layout.envelope.id; }
  // An attempt or a bounce runs: operator commands and expiry leave it alone.
  bool busy() const { return stage == Stage::InFlight || stage == Stage::Bouncing; }
  bool waiting() const { return stage == Stage::Waiting || stage == Stage::WaitingForChain; }
  // Some recipient is neither delivered nor bounced.
  bool has_pending() const;
};

const char* to_string(QueueEntry::Stage stage);

class QueueIndex {
 public:
  using Stage = QueueEntry::Stage;
  using Entries = std::map<std::string, QueueEntry>;

  struct Counts {
    std::size_t queued = 0;          // queue/, never attempted
    std::size_t deferred = 0;        // queue/, attempted at least once
    std::size_t failed = 0;          // failed/
    std::uint64_t queued_bytes = 0;  // queue/ files
    bool operator==(const Counts&) const = default;
  };

  // False (and nothing changes) if an entry with its id is there already.
  bool add(QueueEntry entry);
  // Forgets the entry (the caller removes its files). False if there is none.
  bool remove(const std::string& id);

  const QueueEntry* find(const std::string& id) const;
  const Entries& entries() const { return entries_; }
  std::size_t size() const { return entries_.size(); }

  // Moves the entry to `stage`; `failed_at_ms` is kept for Failed. No-op for an unknown id.
  void set_stage(const std::string& id, Stage stage, std::int64_t failed_at_ms = 0);
  // Replaces the delivery state (a settlement); re-counts (never tried -> tried) and
  // re-orders it if it waits.
  void set_state(const std::string& id, DeliveryState state);
  // Makes the entry due at `next_attempt_ms`, and Waiting if it was WaitingForChain.
  void set_due(const std::string& id, std::int64_t next_attempt_ms);

  // The first entry in due order, and when it is due.
  struct Due {
    std::string id;
    std::int64_t at_ms = 0;
    Stage stage = Stage::Waiting;
  };
  std::optional<Due> first_due() const;
  std::size_t due_count() const { return due_.size(); }
  // The arrival of the oldest entry in queue/.
  std::optional<std::int64_t> oldest_arrival_ms() const;
  const Counts& counts() const { return counts_; }

 private:
  using DueKey = std::tuple<std::int64_t, std::int64_t, std::string>;  // next, arrival, id
  using ArrivalKey = std::pair<std::int64_t, std::string>;

  // Take the entry out of (false, -1) or put it into (true, +1) due order, and the counts
  // and arrival order, as its stage and state say; around every change of either.
  void order(const QueueEntry& entry, bool in);
  void count(const QueueEntry& entry, int sign);

  Entries entries_;
  std::set<DueKey> due_;
  std::set<ArrivalKey> by_arrival_;
  Counts counts_;
};

}  // namespace portrelay::spool
