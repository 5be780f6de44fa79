#pragma once
// Why an attempt to reach an upstream endpoint failed. The string forms are metric label
// values (portrelay_upstream_connect_failures_total{reason}) and a public interface.
#include <array>

namespace portrelay {

enum class FailureReason {
  Timeout,              // TCP connect did not complete in connect_timeout (silent drop)
  Refused,              // RST / ECONNREFUSED
  Unreachable,          // ICMP unreachable, no route
  Dns,                  // name did not resolve
  TlsHandshake,         // TLS failed for a reason other than the certificate
  TlsVerify,            // certificate did not verify (wrong host, expired, unknown CA)
  StartTlsUnavailable,  // STARTTLS required but not offered or refused
  GreetingTimeout,      // connected, but no 220 in greeting_timeout
  GreetingRejected,     // greeting was not 220 (421, 554, ...)
  AuthFailed,           // AUTH refused (535 and friends) or no usable mechanism
  Protocol,             // malformed replies, unexpected codes, reply timeouts
  Closed,               // the upstream closed the connection or said 421
  // Inside a transaction, after the endpoint was ready
  // (portrelay_upstream_transaction_failures_total):
  TransactionTimeout,   // no reply to MAIL/RCPT/DATA or after the final dot within its timeout
  TransactionReset,     // connection closed or reset mid-transaction, or a 421
  TransactionProtocol,  // reply out of turn or out of protocol, malformed reply
  // Not the endpoint's: this process ran out of file descriptors or memory (EMFILE, ENFILE,
  // ENOBUFS, ENOMEM). Counted in portrelay_local_errors_total; the health table is untouched.
  LocalResources,
  // Not attempted to the end: every endpoint left was cooling down, so the selection gave
  // up one stagger after it started. Only in a Selection's failures list (the client's 451
  // says so); never recorded in the health table nor used as a metric label.
  CoolingDown,
  // Not attempted: the upstream's own limits (paused after a throttle, no token, no free
  // connection) held the message back longer than the selection may wait. Like
  // CoolingDown, only in a Selection's failures list.
  Limited,
};

// Reasons an attempt to get a ready connection fails (connect_failures_total{reason}).
inline constexpr std::array kAllFailureReasons = {
    FailureReason::Timeout,
    FailureReason::Refused,
    FailureReason::Unreachable,
    FailureReason::Dns,
    FailureReason::TlsHandshake,
    FailureReason::TlsVerify,
    FailureReason::StartTlsUnavailable,
    FailureReason::GreetingTimeout,
    FailureReason::GreetingRejected,
    FailureReason::AuthFailed,
    FailureReason::Protocol,
    FailureReason::Closed,
};

// Reasons a transaction fails on a ready connection (transaction_failures_total{reason}).
inline constexpr std::array kTransactionFailureReasons = {
    FailureReason::TransactionTimeout,
    FailureReason::TransactionReset,
    FailureReason::TransactionProtocol,
};

const char* to_string(FailureReason reason);
// A libuv error that says this process, not the peer, is out of resources.
bool is_local_resource_error(int uv_status);
// Maps a libuv connect error (UV_ECONNREFUSED, ...) to a reason.
FailureReason reason_from_connect_error(int uv_status);

}  // namespace portrelay
