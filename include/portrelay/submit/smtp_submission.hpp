#pragma once
// One blocking SMTP submission to the local relay, as `portrelay sendmail` makes it.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "portrelay/smtp/reply.hpp"

namespace portrelay::submit {

struct SubmissionRequest {
  std::string host;  // numeric IPv4/IPv6 address of the relay's listener
  std::uint16_t port = 0;
  std::string helo_name;
  std::string sender;  // envelope MAIL FROM; "" is the null sender
  std::vector<std::string> recipients;
  std::string content;     // CRLF lines, not dot-stuffed
  bool eight_bit = false;  // send BODY=8BITMIME when the server offers 8BITMIME
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds reply_timeout{300'000};  // greeting and each command
  // Waiting for the answer to the end of data: the relay answers only once an upstream has
  // accepted the message (or every endpoint failed), so this is longer than a command's.
  std::chrono::milliseconds final_reply_timeout{900'000};
};

struct SubmissionResult {
  enum class Outcome {
    kDelivered,     // 2xx to the end of data: every accepted recipient has the message
    kUnreachable,   // no connection, a broken one, a timeout or a protocol error
    kTransient,     // a 4xx reply: nothing was submitted, try again later
    kRejected,      // a 5xx reply to the greeting, EHLO, MAIL or data: nothing was submitted
    kNoRecipients,  // every recipient got 5xx: nothing was submitted
  };
  Outcome outcome = Outcome::kUnreachable;
  std::string detail;  // the deciding reply ("550 5.1.1 ...") or what went wrong
  // Recipients refused with 5xx at RCPT ("addr: 550 ..."); with kDelivered the others got it.
  std::vector<std::string> refused_recipients;
};

// EHLO, MAIL, each RCPT, DATA, content, QUIT, one command at a time. A 4xx to any RCPT ends
// the transaction (RSET) with kTransient so that a retry sends to everyone exactly once; a
// 5xx to some RCPTs still submits to the others. `trace`, when set, gets "C: ..." and
// "S: ..." lines (sendmail -v).
SubmissionResult submit_message(const SubmissionRequest& request,
                                const std::function<void(const std::string&)>& trace = {});

}  // namespace portrelay::submit
