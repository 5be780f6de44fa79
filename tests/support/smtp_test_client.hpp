#pragma once
// Blocking SMTP client with timeouts for driving a server under test. Every wait is bounded,
// so a broken server fails the test (SmtpTestError) instead of hanging it.
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "support/channel.hpp"
#include "support/dot_stuffing.hpp"
#include "support/socket_util.hpp"
#include "support/tls_channel.hpp"

namespace portrelay::test {

class SmtpTestError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SmtpReply {
  int code = 0;
  std::string text;                // line texts (after "NNN-"/"NNN "), joined by "\n"
  std::vector<std::string> lines;  // the same, one entry per line
  std::string raw;                 // exact bytes of the reply incl. CRLFs
};

class SmtpTestClient {
 public:
  explicit SmtpTestClient(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~SmtpTestClient();
  SmtpTestClient(const SmtpTestClient&) = delete;
  SmtpTestClient& operator=(const SmtpTestClient&) = delete;

  // Throws SmtpTestError if the connection fails within the timeout.
  void connect(const std::string& host, uint16_t port);
  // TCP connect followed straight by a TLS handshake (port 465 style).
  void connect_tls(const std::string& host, uint16_t port, const TlsClientOptions& options);
  // Sends STARTTLS, expects 220, drops anything buffered (RFC 3207), handshakes.
  // Returns the reply to STARTTLS; throws SmtpTestError if it is not 220 or TLS fails.
  // `pipelined_plaintext` goes out in the same write right after "STARTTLS\r\n": a command
  // injection probe (CVE-2011-0411) that a correct server discards.
  SmtpReply starttls(const TlsClientOptions& options, std::string_view pipelined_plaintext = {});
  bool is_tls() const;
  void close();

  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

  // Reads one (possibly multi-line) reply. Throws SmtpTestError on timeout, close or garbage.
  SmtpReply read_reply();
  void send_line(std::string_view command);  // appends CRLF
  void send_raw(std::string_view bytes);
  SmtpReply command(std::string_view command);  // send_line + read_reply

  // MAIL FROM / RCPT TO (each) / DATA / dot-stuffed content / ".". Stops early and returns the
  // failing reply if MAIL is not 2xx, no RCPT is accepted, or DATA is not 354; otherwise
  // returns the reply to the final dot. CRLF is appended to non-empty content that lacks it.
  SmtpReply send_message(std::string_view from, const std::vector<std::string>& recipients,
                         std::string_view content);

  // True if the server closed the connection (read returns 0) within `wait`. Data that arrives
  // first is kept for read_reply(), so the caller can still read a final reply such as 421.
  bool closed(std::chrono::milliseconds wait = std::chrono::seconds(1));

 private:
  // Appends at least one byte to buffer_; false on close. Throws on timeout or error.
  bool fill_buffer(std::chrono::steady_clock::time_point deadline);
  Channel& channel();

  std::chrono::milliseconds timeout_;
  UniqueFd fd_;
  std::unique_ptr<Channel> channel_;
  SslCtxPtr tls_context_;
  std::string buffer_;
  bool peer_closed_ = false;
};

}  // namespace portrelay::test
