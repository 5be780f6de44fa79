#pragma once
// spool::dsn_inputs: what a bounce (bounce_message.hpp) says about a settled message, from
// the queue's record of it and the settlement that ended it. Pure, so what a sender is told
// is tested without a queue.
//
//  * One recipient entry per recipient the settlement bounced, with action "failed", the
//    last reply recorded for it as the diagnostic, and the host of the endpoint that gave
//    it as the Remote-MTA (empty when none answered).
//  * An expired recipient's status is 4.4.7 (RFC 3463: delivery time expired) whatever
//    the upstream last said. Otherwise the status is left empty: build_bounce() takes the
//    enhanced code from the diagnostic, the one parser of it.
//  * The reason names the lifetime for an expiry, else the upstream's refusal.
#include <cstdint>
#include <functional>
#include <string>

#include "portrelay/config/config.hpp"
#include "portrelay/spool/bounce_message.hpp"
#include "portrelay/spool/delivery_plan.hpp"
#include "portrelay/spool/spool_record.hpp"

namespace portrelay::spool {

// The spool's side of a bounce: who reports, when, and how long a message may wait.
struct DsnContext {
  std::string reporting_mta;  // our hostname
  std::int64_t now_ms = 0;    // the bounce's Date
  config::Duration max_lifetime{};
  // The host of the endpoint a settlement names ("name:port"); empty: the label itself.
  std::function<std::string(const std::string& label)> remote_host;
};

// `envelope` and `settlement` describe the original (settlement.state holds the replies);
// `original_headers` its header section (header_section()).
BounceInput dsn_inputs(const DsnContext& context, const Envelope& envelope,
                       const Settlement& settlement, std::string original_headers);

}  // namespace portrelay::spool
