#pragma once
// relay::MessageLedger: the one observer of finished messages. Each message's final outcome
// is counted in portrelay_messages_total exactly once, by the outermost owner of the message
// at that moment, and nowhere else:
//
//   a client's message relayed, refused or deferred by the upstream chain   PassthroughRelay,
//                                                                            FallbackSink
//   a client's message we answered 4xx ourselves (spool full, write error)  the spool sinks
//   a client's message refused locally (content, size)                      SubmissionSession
//   a queued message leaving the queue (delivered, bounced, expired)        spool::Spool
//
// A message the spool takes is not counted when it is queued (that is an event,
// portrelay_queue_accepted_total, and a gauge); it counts once, when it leaves the queue.
#include <string>

#include "portrelay/metrics/metrics.hpp"
#include "portrelay/relay/delivery_report.hpp"

namespace portrelay::relay {

class MessageLedger {
 public:
  explicit MessageLedger(metrics::Metrics& metrics) : metrics_(metrics) {}

  // A client's message ended at the chain's word (or with none to take it: the client heard
  // 4xx). Counts it, and writes the `message` log line with who it was for.
  // `original_sender`: the sender as the client gave it, before [rewrite] ("" when it
  // was not rewritten); the line shows both.
  void client_message(const std::string& session, const std::string& message_id,
                      const std::string& sender, const DeliveryReport& report,
                      const std::string& original_sender = "");
  // The client heard a 4xx we made (the callers log why).
  void deferred_locally() { metrics_.message(metrics::MessageResult::Deferred); }
  // Refused locally: content, size, sender or route policy (the caller logs why).
  void rejected() { metrics_.message(metrics::MessageResult::Rejected); }
  // A queued message left the queue; `delivered_some`: some recipient was delivered,
  // `waited`: seconds since the client's 250.
  // `route`: the [[route]] it was queued on.
  void left_queue(metrics::MessageResult result, bool delivered_some, double waited,
                  std::string_view route = config::kDefaultRouteName);

 private:
  metrics::Metrics& metrics_;
};

// How a report counts: delivered -> relayed, refused -> failed, the rest -> deferred.
metrics::MessageResult message_result(const DeliveryReport& report);

}  // namespace portrelay::relay
