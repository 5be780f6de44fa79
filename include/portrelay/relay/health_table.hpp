#pragma once
// What the relay remembers about each endpoint of the chain. Pure: the caller passes the
// current time, so timing logic is tested with a fake clock.
//
// A failure puts the endpoint in cool-down: it is skipped for `base * 2^(n-1)` (n =
// consecutive failures), capped, with +-20% jitter so many relays do not retry in step.
// An endpoint that lost a race while still not ready a whole stagger after it started is
// treated the same way ("suspect"): a silently dropped SYN, or a port that accepts TCP and
// never greets, never produces a failure before the winner cancels it. The background
// probe then finds out the truth.
//
// Recovery schedule: while mail waits for the chain (the spool has deferred messages), a
// down endpoint is worth probing long before its cool-down ends. Each failure therefore
// also sets `next_probe`, after an interval that grows with the length of the outage:
// `recovery.first`, or a 30th of how long the endpoint has been down if that is longer,
// capped at `recovery.max`, with the same jitter. With the defaults (1 s, 10 s) an outage
// shorter than a minute is noticed within about 2 s of its end, any outage within about
// 10 s, and a long one costs one probe per 10 s. due_for_probe(now, /*recovery=*/true)
// honours it; ordinary traffic and ordinary probes keep to the cool-down.
//
// Health refresh: so that what the table (and `portrelay_upstream_up`) says is current even
// for endpoints no message has used lately, every endpoint is re-checked on a schedule of
// its own (set_refresh_interval; 0 turns it off). A fresh entry is due at once (the
// start-up probe); each check, a probe or a message's connect, success or failure, makes
// the next one due `interval` times a factor in [0.8, 1.0] later: jittered so that
// endpoints and relays do not probe in step, and never later than one interval. A refresh
// probe does not make the endpoint unavailable to messages (unlike a fail-back probe: a
// healthy endpoint must not be skipped every interval).
//
// Entries are stored by endpoint identity (host, port, TLS mode); the index-based API
// addresses the table's own chain. A table built for a new configuration snapshot takes
// over the entries of the endpoints both chains share (inherit()), so a reload does not
// forget that an endpoint is cooling down.
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "portrelay/base/failure_reason.hpp"
#include "portrelay/relay/endpoint_identity.hpp"

namespace portrelay::relay {

// When a down endpoint is probed early in recovery mode ([relay] recovery_probe_min/max).
struct RecoverySchedule {
  std::chrono::milliseconds first = std::chrono::seconds(1);  // the shortest interval
  std::chrono::milliseconds max = std::chrono::seconds(10);   // the longest interval
};

class HealthTable {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Duration = std::chrono::milliseconds;
  // Returns a factor in [0.8, 1.2]; injectable for tests.
  using Jitter = std::function<double()>;

  enum class State { Unknown, Up, Down };
  using RecoverySchedule = relay::RecoverySchedule;

  struct Entry {
    State state = State::Unknown;
    unsigned consecutive_failures = 0;
    TimePoint cooldown_until{};
    std::optional<FailureReason> last_failure;
    bool probing = false;      // a background probe is running
    TimePoint next_probe{};    // recovery mode: not probed before this (set by each failure)
    TimePoint down_since{};    // the first failure of the current run of failures
    bool refreshing = false;   // a refresh probe is running (does not make it unavailable)
    TimePoint next_refresh{};  // refresh schedule: not probed for freshness before this
  };

  // `chain[i]` is the identity of endpoint i. Endpoints with the same identity share one
  // entry (they are the same upstream).
  HealthTable(std::vector<EndpointIdentity> chain, Duration base, Duration cap, Jitter jitter = {},
              RecoverySchedule recovery = {});
  // `endpoints` distinct anonymous endpoints (tests of the timing rules).
  HealthTable(std::size_t endpoints, Duration base, Duration cap, Jitter jitter = {},
              RecoverySchedule recovery = {});

  // Takes over `previous`'s entries for every endpoint of this chain with the same
  // identity, except those in `fresh` (their other settings changed: start over). A probe
  // belongs to the table that started it, so inherited entries are not "probing".
  void inherit(const HealthTable& previous, const std::set<EndpointIdentity>& fresh = {});

  bool cooling_down(std::size_t index, TimePoint now) const;
  // Cooling down or being probed: a message does not choose it before the others.
  bool unavailable(std::size_t index, TimePoint now) const;
  // Every endpoint not in `exclude` is unavailable (false when none is left): a race over
  // them can only succeed if one has just recovered.
  bool all_unavailable(TimePoint now, const std::set<std::size_t>& exclude = {}) const;
  // Some endpoint can take a message now (readiness): not cooling down, and not an
  // endpoint whose first probe is still running (nothing is known about it yet; with
  // refresh off, an unknown endpoint counts as usable, as it is for messages).
  bool any_usable(TimePoint now) const;
  void record_success(std::size_t index);
  void record_failure(std::size_t index, FailureReason reason, TimePoint now);
  // Lost a race before connecting: cool down like a failure, but counted as no failure.
  void record_suspect(std::size_t index, TimePoint now);

  // Endpoints in the order to try for a message: those not cooling down (nor being
  // probed), in chain order, then the others, in chain order (better a late try than none).
  std::vector<std::size_t> preference_order(TimePoint now) const;
  // The same over `among` only (a route's endpoints), in the order given instead of chain
  // order.
  std::vector<std::size_t> preference_order(TimePoint now,
                                            const std::vector<std::size_t>& among) const;
  // Endpoints with failures that are more preferred than the best endpoint known to be up
  // and not being probed already: candidates for a background probe (fail-back). Due once
  // the cool-down is over; with `recovery`, also once `next_probe` has come.
  std::vector<std::size_t> due_for_probe(TimePoint now, bool recovery = false) const;
  void set_probing(std::size_t index, bool probing) { mutable_entry(index).probing = probing; }

  // The refresh schedule (see the top of this file). Zero (the default) turns it off.
  void set_refresh_interval(Duration interval) { refresh_interval_ = interval; }
  Duration refresh_interval() const { return refresh_interval_; }
  // Endpoints whose next refresh has come and that no probe is checking already, in chain
  // order; none while refreshing is off. Cooling down does not exempt an endpoint: the
  // refresh is what tells an operator it came back.
  std::vector<std::size_t> due_for_refresh(TimePoint now) const;
  void set_refreshing(std::size_t index, bool refreshing) {
    mutable_entry(index).refreshing = refreshing;
  }
  // The endpoint's health was just learned (a probe or a connect ended, either way): its
  // next refresh is one jittered interval from `now`.
  void checked(std::size_t index, TimePoint now);

  const Entry& entry(std::size_t index) const { return entries_.at(chain_.at(index)); }
  // The entry of an identity, if this table has it (tests, logs).
  const Entry* find(const EndpointIdentity& identity) const;
  std::size_t size() const { return chain_.size(); }

 private:
  Entry& mutable_entry(std::size_t index) { return entries_.at(chain_.at(index)); }
  void cool_down(Entry& entry, TimePoint now);

  std::vector<EndpointIdentity> chain_;
  std::map<EndpointIdentity, Entry> entries_;
  Duration base_;
  Duration cap_;
  Jitter jitter_;
  RecoverySchedule recovery_;
  Duration refresh_interval_{0};
};

}  // namespace portrelay::relay
