#include "portrelay/relay/message_ledger.hpp"

#include "portrelay/base/log.hpp"

namespace portrelay::relay {

metrics::MessageResult message_result(const DeliveryReport& report) {
  switch (report.outcome) {
    case DeliveryOutcome::Delivered:
      return metrics::MessageResult::Relayed;
    case DeliveryOutcome::Refused:
      return metrics::MessageResult::Failed;
    case DeliveryOutcome::Deferred:
    case DeliveryOutcome::Throttled:
      return metrics::MessageResult::Deferred;
  }
  return metrics::MessageResult::Deferred;
}

void MessageLedger::client_message(const std::string& session, const std::string& message_id,
                                   const std::string& sender, const DeliveryReport& report,
                                   const std::string& original_sender) {
  const std::string& original = original_sender.empty() ? sender : original_sender;
  const metrics::MessageResult result = message_result(report);
  metrics_.message(result, report.route);
  if (result == metrics::MessageResult::Relayed)
    metrics_.message_relayed(report.seconds, report.size);
  // Who the message was for, on the same line (Postfix logs to=<...> per recipient): `to`
  // lists the recipients the upstream accepted, whose fate is `result` and `reply`;
  // `refused` each one it refused at RCPT with its answer. `from` is "" for a null sender.
  std::string to;
  std::string refused;
  std::size_t accepted = 0;
  for (const RecipientReport& recipient : report.recipients) {
    if (recipient.rcpt_accepted) {
      ++accepted;
      if (!to.empty()) to += ',';
      to += recipient.address;
    } else {
      if (!refused.empty()) refused += "; ";
      refused += recipient.address + ": " + recipient.reply.summary();
    }
  }
  const auto level =
      result == metrics::MessageResult::Relayed ? log::Level::Info : log::Level::Warn;
  const std::string result_text = metrics::to_string(result);
  const std::string recipients = std::to_string(accepted);
  const std::string size = std::to_string(report.size);
  const std::string endpoint = report.endpoint.empty() ? "none" : report.endpoint;
  const std::string summary = report.reply.summary();
  const std::string ms = std::to_string(static_cast<long>(report.seconds * 1000));
  if (refused.empty()) {
    log::write(level, "message",
               {{"session", session},
                {"message", message_id},
                {"result", result_text},
                {"from", sender},
                {"original_from", original},
                {"to", to},
                {"recipients", recipients},
                {"size", size},
                {"endpoint", endpoint},
                {"route", report.route},
                {"reply", summary},
                {"ms", ms}});
  } else {
    log::write(level, "message",
               {{"session", session},
                {"message", message_id},
                {"result", result_text},
                {"from", sender},
                {"original_from", original},
                {"to", to},
                {"refused", refused},
                {"recipients", recipients},
                {"size", size},
                {"endpoint", endpoint},
                {"route", report.route},
                {"reply", summary},
                {"ms", ms}});
  }
}

void MessageLedger::left_queue(metrics::MessageResult result, bool delivered_some, double waited,
                               std::string_view route) {
  metrics_.message(result, route);
  if (delivered_some) metrics_.queue_delivered(waited);
}

}  // namespace portrelay::relay
