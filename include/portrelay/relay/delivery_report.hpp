#pragma once
// relay::DeliveryReport: what became of one message handed to a Deliverer, as data. The
// decision is Transaction::classify's; the report only carries it out to whoever asked
// (a client session's sink, the spool's delivery) so nobody parses reply text to decide
// again.
#include <cstdint>
#include <string>
#include <vector>

#include "portrelay/smtp/reply.hpp"

namespace portrelay::relay {

enum class DeliveryOutcome {
  Delivered,  // an upstream answered 2xx to the final dot for this recipient
  Refused,    // an upstream's 5xx (MAIL, RCPT, DATA or the final dot): final
  Deferred,   // a 4xx, nothing reachable, a broken connection, a local error: try later
  Throttled,  // the upstream asked us to slow down or is out of quota (Transaction's
              // classify), or its limits held the message back: waits like Deferred, but
              // for the upstream's gate rather than a retry backoff
};
const char* to_string(DeliveryOutcome outcome);
// Throttled waits like Deferred: neither is the upstream's final word.
inline bool retryable(DeliveryOutcome outcome) {
  return outcome == DeliveryOutcome::Deferred || outcome == DeliveryOutcome::Throttled;
}

struct RecipientReport {
  std::string address;
  DeliveryOutcome outcome = DeliveryOutcome::Deferred;
  smtp::Reply reply;           // the answer that decided it, as the client would hear it
  std::string endpoint;        // "name:port" of the endpoint that answered; empty if none did
  bool rcpt_accepted = false;  // its RCPT got 2xx (then the final dot decided its outcome)
};

struct DeliveryReport {
  // The message as a whole: Delivered when an upstream took it (for the recipients it
  // accepted), Refused when its answer was final, else Deferred (or Throttled).
  DeliveryOutcome outcome = DeliveryOutcome::Deferred;
  // One per recipient named, in the order named. A recipient never asked about (the
  // attempt ended first) is Deferred with the message's reply.
  std::vector<RecipientReport> recipients;
  smtp::Reply reply;       // the last answer: the final dot's, or why there was none
  std::string endpoint;    // the endpoint that gave it; empty when no endpoint could take
                           // the message now (all unreachable, cooling down or failing)
  std::string route;       // the [[route]] that carried it ("default": none matched)
  std::uint64_t size = 0;  // body octets
  double seconds = 0;      // from the end of data (or the start, for a whole delivery)
};

}  // namespace portrelay::relay
