#pragma once
// One SMTP client connection to one upstream endpoint: resolve, TCP over the host's
// addresses (net::AddressRacer), implicit TLS or STARTTLS, greeting, EHLO, AUTH; then
// commands and message bodies (BodyStreamer). Protocol decisions are made by
// smtp::ClientHandshake before "ready" and by relay::Transaction after; this class moves
// bytes, enforces the timeouts and reports failures as values.
#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "portrelay/net/address_racer.hpp"
#include "portrelay/net/connection.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/net/resolver.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/relay/body_streamer.hpp"
#include "portrelay/relay/endpoint_runtime.hpp"
#include "portrelay/relay/message_body.hpp"
#include "portrelay/relay/upstream_response.hpp"
#include "portrelay/smtp/client_handshake.hpp"
#include "portrelay/smtp/reply.hpp"

namespace portrelay::relay {

// What happened on the way to "ready", for `portrelay probe` and logs. Times are
// milliseconds since connect() was called; -1 when the stage was not reached.
struct ConnectTrace {
  std::vector<std::string> addresses;  // resolved, in the order tried
  std::string connected_address;
  double resolved_ms = -1;
  double tcp_ms = -1;
  double tls_ms = -1;
  double ready_ms = -1;
  std::string tls_version;
  std::string tls_cipher;
  // The client certificate presented because the server asked for one ("CN=... sha256=...",
  // [[upstream]] tls_client_cert); "none configured" when it asked and there is none; empty
  // when it did not ask.
  std::string client_certificate;
  std::string greeting;                 // the 220 line
  std::vector<std::string> extensions;  // EHLO keywords (after TLS when TLS is used)
  bool authenticated = false;
};

class UpstreamConnection {
 public:
  using ReadyCallback = std::function<void(std::optional<AttemptFailure> failure)>;
  using ResponseCallback = std::function<void(const UpstreamResponse& response)>;

  // Where the connection is. Exactly one at a time; every method checks it.
  enum class Phase {
    New,          // connect() not called yet
    Resolving,    // DNS (resolve_timeout)
    Connecting,   // TCP over the addresses (connect_timeout)
    Handshaking,  // TLS, greeting, EHLO, STARTTLS, AUTH (greeting/handshake timeouts)
    Ready,        // idle: a command may be sent
    Command,      // a command (or the final dot) is out, its reply is awaited
    Body,         // the body is being streamed after a 354
    Closed,       // failed, or QUIT sent: never used again
  };

  UpstreamConnection(net::Loop& loop, std::shared_ptr<const EndpointRuntime> endpoint,
                     const UpstreamTimeouts& timeouts, std::string helo_name);
  ~UpstreamConnection();
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  // Runs until the endpoint is ready for MAIL, or fails. Called at most once.
  void connect(ReadyCallback callback);
  // For a pooled connection: RSET, answered 2xx within `limit`, means it is still alive.
  // Skipped (ready on the next loop turn) when the server answered less than `check_after`
  // ago and no transaction is left open on it (UpstreamTimeouts::pool_check_after).
  void revalidate(config::Duration limit, config::Duration check_after, ReadyCallback callback);
  // Sends one command line (without CRLF) and waits for its reply.
  void command(const std::string& line, ResponseCallback callback);
  // After a 354: sends the body dot-stuffed, then ".", and waits for the final reply.
  // `rewrite`: the account's identity for this message's header (BodyStreamer).
  void send_body(const MessageBody& body, std::optional<BodyStreamer::Rewrite> rewrite,
                 ResponseCallback callback);
  // Polite goodbye: QUIT, then close without waiting long. Mid-body the connection is
  // just closed: a QUIT then would land inside the message. Drops pending callbacks.
  void quit();

  Phase phase() const { return phase_; }
  // Ready for MAIL: nothing in flight, so it can be reused or politely closed.
  bool usable() const { return phase_ == Phase::Ready; }
  bool tcp_connected() const { return connection_ != nullptr; }
  // Came out of the pool (it carried an earlier message) rather than a fresh connect.
  bool reused() const { return reused_; }
  void mark_reused() { reused_ = true; }
  // True the first time only: the first message on a connection logs `upstream_ready`.
  bool first_announcement() { return !std::exchange(announced_, true); }
  // Upstream limits: what this connection holds (a slot of its upstream's max_connections,
  // given back when it is destroyed), and how many messages it was handed for
  // (max_messages_per_connection).
  void hold(std::shared_ptr<void> lease) { lease_ = std::move(lease); }
  void count_message() { ++messages_; }
  std::size_t messages() const { return messages_; }
  const config::Endpoint& endpoint() const { return runtime_->endpoint; }
  const std::shared_ptr<const EndpointRuntime>& runtime() const { return runtime_; }
  const smtp::Capabilities& capabilities() const { return handshake_.capabilities(); }
  std::string tls_version() const;
  std::chrono::steady_clock::duration ready_after() const { return ready_after_; }
  const ConnectTrace& trace() const { return trace_; }

 private:
  // One SMTP line for `--debug-transcript` ("out" or "in"); nothing when it is off.
  void transcribe(const char* direction, std::string_view line) const;
  void on_resolved(int status, std::vector<sockaddr_storage> addresses);
  void on_tcp_connected(std::unique_ptr<net::TcpStream> stream);
  void on_data(std::string_view plaintext);
  void on_closed(int status);
  void on_reply(const smtp::Reply& reply);
  void perform(const smtp::HandshakeAction& action);
  void start_tls();
  // The OAuth token arrived (or why there is none): on to resolving.
  void on_token(OAuthTokenSource::Token token);
  void resolve();
  // After the upstream refused the OAuth token: true if a fresh token is being fetched
  // (AUTH is retried with it, or `refused` is the failure if it is the same or none).
  bool retry_with_fresh_token(const smtp::HandshakeAction& refused);
  void fail(FailureReason reason, std::string detail,
            std::optional<smtp::Reply> refusal = std::nullopt);
  void deliver(UpstreamResponse response);
  // `what` + `detail` + " within <timeout>" is the failure's text if the timer fires.
  void arm_timer(config::Duration timeout, FailureReason reason, std::string_view what,
                 std::string_view detail = {});
  void await_reply(config::Duration timeout, std::string_view what, std::string_view detail);
  double elapsed_ms() const;

  net::Loop& loop_;
  std::shared_ptr<const EndpointRuntime> runtime_;
  UpstreamTimeouts timeouts_;
  std::string helo_name_;
  smtp::ClientHandshake handshake_;
  std::string oauth_token_sent_;  // the token of the last AUTH; never logged
  bool oauth_token_retried_ = false;
  // Waiting for the endpoint's token command; destroying it withdraws the wait.
  std::unique_ptr<OAuthTokenSource::Request> token_request_;
  Phase phase_ = Phase::New;
  std::unique_ptr<net::Resolution> resolution_;
  std::unique_ptr<net::AddressRacer> racer_;
  std::unique_ptr<net::Connection> connection_;
  std::unique_ptr<BodyStreamer> streamer_;
  net::Timer timer_;
  FailureReason timeout_reason_ = FailureReason::Protocol;
  config::Duration timeout_limit_{};
  std::string timeout_what_;
  smtp::ReplyParser parser_;
  ReadyCallback ready_callback_;
  ResponseCallback response_callback_;
  bool reused_ = false;
  bool announced_ = false;
  // For revalidate: when the server last answered, and whether a MAIL is still open on it
  // (sent, and neither the reply to the final dot nor a 2xx to RSET came since).
  std::chrono::steady_clock::time_point answered_at_{};
  bool transaction_open_ = false;
  bool awaiting_end_of_data_ = false;
  std::shared_ptr<void> lease_;
  std::size_t messages_ = 0;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::duration ready_after_{};
  ConnectTrace trace_;
  // Replies already received when a command is sent cannot answer it: on_data counts
  // its batches, and a command sent while one is processed remembers which.
  std::uint64_t batch_ = 0;
  bool in_batch_ = false;
  std::uint64_t sent_in_batch_ = 0;
};

}  // namespace portrelay::relay
