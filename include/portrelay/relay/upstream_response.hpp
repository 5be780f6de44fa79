#pragma once
// What an upstream connection reports: the answer to a command is either a reply or the
// reason the connection failed before one arrived. Failures are values, never exceptions.
#include <optional>
#include <string>
#include <variant>

#include "portrelay/base/failure_reason.hpp"
#include "portrelay/smtp/reply.hpp"

namespace portrelay::relay {

struct AttemptFailure {
  FailureReason reason = FailureReason::Protocol;
  std::string detail;  // never contains secrets
  // The server's reply that ended the handshake (a greeting, EHLO or AUTH refusal), if a
  // reply did: the selector asks whether it is a throttle of the whole account.
  std::optional<smtp::Reply> refusal = std::nullopt;
};

using UpstreamResponse = std::variant<smtp::Reply, AttemptFailure>;

// The reply, or null when the connection failed.
inline const smtp::Reply* reply_of(const UpstreamResponse& response) {
  return std::get_if<smtp::Reply>(&response);
}
inline const AttemptFailure* failure_of(const UpstreamResponse& response) {
  return std::get_if<AttemptFailure>(&response);
}

}  // namespace portrelay::relay
