#pragma once
// Delivery status notifications (RFC 3464 inside an RFC 6522 multipart/report). Pure: the
// spool decides when a message bounces and sends what build_bounce returns with
// MAIL FROM:<> to the original sender.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace portrelay::spool {

struct BounceRecipient {
  std::string address;     // original recipient
  std::string action;      // "failed" (permanent refusal or expiry) or "delayed"
  std::string status;      // enhanced code "5.1.1"; empty: derived from the diagnostic
  std::string remote_mta;  // host that answered; empty when none did (expiry while unreachable)
  std::string diagnostic;  // the upstream reply, one line ("550 5.1.1 <b@x>: unknown user"); may
                           // be empty
};

struct BounceInput {
  std::string reporting_mta;  // our hostname
  std::string queue_id;
  std::string original_sender;  // envelope sender of the original (never empty: caller checks)
  std::int64_t arrival_ms = 0;  // when we accepted the original
  std::int64_t now_ms = 0;      // Date of the bounce
  std::string reason;           // human summary: "permanently refused", "not delivered within 5d"
  std::vector<BounceRecipient> recipients;
  std::string original_headers;  // the original's header section (header_section()), CRLF
};

// The whole message (header section, blank line, body), to be sent with MAIL FROM:<> to
// input.original_sender. Guarantees, whatever the input: CRLF line ends only, no line
// longer than 998 octets, 7-bit octets only (others become '?'), and a MIME boundary that
// occurs nowhere in the content. Long diagnostics are cut (marked "...") and folded.
// A recipient's status, when empty or malformed, is taken from the enhanced code in its
// diagnostic, else from the reply code's class ("5.0.0", "4.0.0"), else from its action.
std::string build_bounce(const BounceInput& input);

// The header section of a message body: up to the first empty line, without it (the whole
// body if there is none), at most `max` octets, cut after the last line end that fits (empty
// if no line end fits).
std::string header_section(std::string_view body, std::size_t max = 64 * 1024);

// Whether a message must not be bounced: null sender, or it is itself a DSN (Content-Type
// multipart/report with report-type=delivery-status), or it has "Auto-Submitted:
// auto-replied" and comes from a MAILER-DAEMON (envelope sender or From: field).
// `headers` is a header section as header_section() returns it.
bool is_bounce(std::string_view sender, std::string_view headers);

}  // namespace portrelay::spool
