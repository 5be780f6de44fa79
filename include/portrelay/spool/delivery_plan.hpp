#pragma once
// What one delivery attempt of a queued message means for it. Pure (the caller passes
// the time and the jitter), so the retry schedule and per-recipient settlement are tested
// without a clock or a network.
//
//  * A recipient the upstream accepted (its RCPT and the final dot both 2xx) is delivered.
//  * A 5xx for a recipient (at MAIL, RCPT or the final dot) bounces it.
//  * Anything else (4xx, nothing reachable, a broken connection) leaves it pending; the
//    next attempt comes after retry_min * 2^(attempts-1), capped at retry_max, +-20%.
//  * A message still pending max_lifetime after its arrival expires: every pending
//    recipient bounces.
//  * The message leaves the queue when no recipient is pending.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "portrelay/relay/delivery_report.hpp"
#include "portrelay/spool/spool_record.hpp"

namespace portrelay::spool {

using Millis = std::chrono::milliseconds;

struct RetryPolicy {
  Millis retry_min{30'000};
  Millis retry_max{1'800'000};
  Millis max_lifetime{5LL * 24 * 3600 * 1000};
};

// The wait before attempt `attempts + 1`, `attempts` >= 1 having failed; `jitter` in
// [0.8, 1.2].
Millis retry_delay(unsigned attempts, const RetryPolicy& policy, double jitter);

enum class RecipientVerdict { Accepted, Permanent, Transient };

struct RecipientResult {
  RecipientVerdict verdict = RecipientVerdict::Transient;
  std::string reply;       // the upstream's answer, or why there was none
  std::string remote_mta;  // the endpoint that answered ("name:port"); empty if none did
};

// One attempt: a result for each recipient that was pending (nullopt for the others).
struct AttemptResult {
  std::vector<std::optional<RecipientResult>> recipients;
  std::string error;  // summary when not everything was delivered
  // No endpoint could take the message now (all unreachable, cooling down, or failing it
  // over), so it waits for the chain to come back: the spool flushes it when one does.
  bool no_endpoint = false;
  // An upstream throttled it (or every upstream's limits held it back): due again soon,
  // without counting toward the backoff; the scheduler's limit check decides when.
  bool throttled = false;
  // For the log line of an attempt that delivered everything (Spool::attempt_done).
  std::string endpoint;
  std::string route;
  std::string reply;
  double seconds = 0;
};

// What a Deliverer's report means for the queue: report.recipients[k] answers for the
// recipient `pending[k]` of an envelope of `recipient_count`. Delivered is Accepted, Refused
// Permanent, anything else (Deferred, Throttled) Transient.
AttemptResult attempt_result(const relay::DeliveryReport& report,
                             const std::vector<std::size_t>& pending, std::size_t recipient_count);

struct Settlement {
  DeliveryState state;
  std::vector<std::size_t> delivered;  // recipients settled by this attempt
  std::vector<std::size_t> bounced;    // including expired ones
  // Per recipient (by index): the endpoint whose answer settled it on this attempt, for
  // the DSN's Remote-MTA; empty when none answered.
  std::vector<std::string> remote_mta;
  bool expired = false;
  bool finished = false;  // nothing pending: the message leaves the queue
};

Settlement settle(const DeliveryState& before, const AttemptResult& attempt, std::int64_t now_ms,
                  std::int64_t arrival_ms, const RetryPolicy& policy, double jitter);

// Every pending recipient bounces now (expiry found without an attempt, or an operator's
// `portrelay queue bounce`), with `reason` as their reply.
Settlement bounce_pending(const DeliveryState& before, const std::string& reason);

}  // namespace portrelay::spool
