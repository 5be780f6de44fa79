#include "portrelay/base/failure_reason.hpp"

#include <uv.h>

namespace portrelay {

const char* to_string(FailureReason reason) {
  switch (reason) {
    case FailureReason::Timeout:
      return "timeout";
    case FailureReason::Refused:
      return "refused";
    case FailureReason::Unreachable:
      return "unreachable";
    case FailureReason::Dns:
      return "dns";
    case FailureReason::TlsHandshake:
      return "tls_handshake";
    case FailureReason::TlsVerify:
      return "tls_verify";
    case FailureReason::StartTlsUnavailable:
      return "starttls_unavailable";
    case FailureReason::GreetingTimeout:
      return "greeting_timeout";
    case FailureReason::GreetingRejected:
      return "greeting_rejected";
    case FailureReason::AuthFailed:
      return "auth_failed";
    case FailureReason::Protocol:
      return "protocol";
    case FailureReason::Closed:
      return "closed";
    case FailureReason::TransactionTimeout:
      return "transaction_timeout";
    case FailureReason::TransactionReset:
      return "transaction_reset";
    case FailureReason::TransactionProtocol:
      return "transaction_protocol";
    case FailureReason::LocalResources:
      return "local_resources";
    case FailureReason::CoolingDown:
      return "cooling_down";
    case FailureReason::Limited:
      return "limited";
  }
  return "protocol";
}

bool is_local_resource_error(int uv_status) {
  return uv_status == UV_EMFILE || uv_status == UV_ENFILE || uv_status == UV_ENOBUFS ||
         uv_status == UV_ENOMEM;
}

FailureReason reason_from_connect_error(int uv_status) {
  if (is_local_resource_error(uv_status)) return FailureReason::LocalResources;
  switch (uv_status) {
    case UV_ECONNREFUSED:
      return FailureReason::Refused;
    case UV_ETIMEDOUT:
      return FailureReason::Timeout;
    case UV_EHOSTUNREACH:
    case UV_ENETUNREACH:
    case UV_EADDRNOTAVAIL:
    case UV_EAFNOSUPPORT:
      return FailureReason::Unreachable;
    case UV_ECONNRESET:
    case UV_EPIPE:
    case UV_EOF:
      return FailureReason::Closed;
    default:
      return FailureReason::Unreachable;
  }
}

}  // namespace portrelay
