#include "portrelay/spool/delivery_plan.hpp"

#include <algorithm>

namespace portrelay::spool {

Millis retry_delay(unsigned attempts, const RetryPolicy& policy, double jitter) {
  unsigned doublings = std::min(attempts == 0 ? 0u : attempts - 1, 30u);
  double base =
      static_cast<double>(policy.retry_min.count()) * static_cast<double>(1u << doublings);
  base = std::min(base, static_cast<double>(policy.retry_max.count()));
  return Millis(static_cast<Millis::rep>(base * std::clamp(jitter, 0.8, 1.2)));
}

AttemptResult attempt_result(const relay::DeliveryReport& report,
                             const std::vector<std::size_t>& pending, std::size_t recipient_count) {
  AttemptResult result;
  result.recipients.resize(recipient_count);
  for (std::size_t k = 0; k < pending.size() && k < report.recipients.size(); ++k) {
    const relay::RecipientReport& recipient = report.recipients[k];
    const RecipientVerdict verdict =
        recipient.outcome == relay::DeliveryOutcome::Delivered ? RecipientVerdict::Accepted
        : recipient.outcome == relay::DeliveryOutcome::Refused ? RecipientVerdict::Permanent
                                                               : RecipientVerdict::Transient;
    if (pending[k] < recipient_count)
      result.recipients[pending[k]] =
          RecipientResult{verdict, recipient.reply.summary(), recipient.endpoint};
  }
  if (report.outcome != relay::DeliveryOutcome::Delivered) result.error = report.reply.summary();
  result.no_endpoint = relay::retryable(report.outcome) && report.endpoint.empty();
  result.throttled = report.outcome == relay::DeliveryOutcome::Throttled;
  result.endpoint = report.endpoint;
  result.route = report.route;
  result.reply = report.reply.summary();
  result.seconds = report.seconds;
  return result;
}

Settlement settle(const DeliveryState& before, const AttemptResult& attempt, std::int64_t now_ms,
                  std::int64_t arrival_ms, const RetryPolicy& policy, double jitter) {
  Settlement result;
  result.state = before;
  DeliveryState& state = result.state;
  if (!attempt.throttled) ++state.attempts;
  result.remote_mta.resize(state.recipients.size());
  bool pending = false;
  for (std::size_t i = 0; i < state.recipients.size(); ++i) {
    RecipientState& recipient = state.recipients[i];
    if (recipient.status != RecipientStatus::Pending) continue;
    const auto& outcome = i < attempt.recipients.size() ? attempt.recipients[i] : std::nullopt;
    if (outcome) {
      recipient.reply = outcome->reply;
      result.remote_mta[i] = outcome->remote_mta;
    }
    if (outcome && outcome->verdict == RecipientVerdict::Accepted) {
      recipient.status = RecipientStatus::Delivered;
      result.delivered.push_back(i);
    } else if (outcome && outcome->verdict == RecipientVerdict::Permanent) {
      recipient.status = RecipientStatus::Bounced;
      result.bounced.push_back(i);
    } else {
      pending = true;
      if (!outcome && recipient.reply.empty()) recipient.reply = attempt.error;
    }
  }
  state.last_error = attempt.error;
  if (pending && now_ms - arrival_ms >= policy.max_lifetime.count()) {
    Settlement expiry = bounce_pending(state, "");
    for (std::size_t i : expiry.bounced) {
      // Keep the last upstream answer: it says why it never got through.
      if (state.recipients[i].reply.empty()) state.recipients[i].reply = attempt.error;
      state.recipients[i].status = RecipientStatus::Bounced;
      result.bounced.push_back(i);
    }
    result.expired = true;
    pending = false;
  }
  result.finished = !pending;
  // A throttled attempt is not the message's failure: the upstream gate (the scheduler's
  // limit check) holds it until an upstream may take it; 1 s keeps it off a hot loop.
  constexpr std::int64_t kThrottledRetryMs = 1000;
  state.next_attempt_ms = !pending ? 0
                          : attempt.throttled
                              ? now_ms + kThrottledRetryMs
                              : now_ms + retry_delay(state.attempts, policy, jitter).count();
  return result;
}

Settlement bounce_pending(const DeliveryState& before, const std::string& reason) {
  Settlement result;
  result.state = before;
  for (std::size_t i = 0; i < result.state.recipients.size(); ++i) {
    RecipientState& recipient = result.state.recipients[i];
    if (recipient.status != RecipientStatus::Pending) continue;
    recipient.status = RecipientStatus::Bounced;
    if (!reason.empty()) recipient.reply = reason;
    result.bounced.push_back(i);
  }
  result.finished = true;
  result.state.next_attempt_ms = 0;
  return result;
}

}  // namespace portrelay::spool
