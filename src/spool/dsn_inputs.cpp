#include "portrelay/spool/dsn_inputs.hpp"

namespace portrelay::spool {

BounceInput dsn_inputs(const DsnContext& context, const Envelope& envelope,
                       const Settlement& settlement, std::string original_headers) {
  BounceInput input;
  input.reporting_mta = context.reporting_mta;
  input.queue_id = envelope.id;
  input.original_sender = envelope.sender;
  input.arrival_ms = envelope.arrival_ms;
  input.now_ms = context.now_ms;
  input.reason = settlement.expired ? "could not be delivered within " +
                                          config::format_duration(context.max_lifetime)
                                    : "was refused by the upstream server";
  for (std::size_t i : settlement.bounced) {
    BounceRecipient recipient;
    recipient.address = envelope.recipients[i];
    recipient.action = "failed";
    recipient.diagnostic = settlement.state.recipients[i].reply;
    if (i < settlement.remote_mta.size() && !settlement.remote_mta[i].empty())
      recipient.remote_mta = context.remote_host ? context.remote_host(settlement.remote_mta[i])
                                                 : settlement.remote_mta[i];
    // Empty: build_bounce() derives it from the diagnostic ("550 5.1.1 ..." gives 5.1.1).
    if (settlement.expired) recipient.status = "4.4.7";
    input.recipients.push_back(std::move(recipient));
  }
  input.original_headers = std::move(original_headers);
  return input;
}

}  // namespace portrelay::spool
