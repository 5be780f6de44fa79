#pragma once
// Passthrough relaying for one client session: the envelope goes to the upstream as the
// client sends it (so recipient refusals reach the client at RCPT), the body is stored
// locally until the client's end of data, then sent. The client hears 2xx only after the
// upstream accepted the message. If the endpoint fails before accepting, the same
// envelope and body are replayed on the next endpoint while the client waits.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "portrelay/metrics/metrics.hpp"
#include "portrelay/relay/message_body.hpp"
#include "portrelay/relay/upstream_selector.hpp"
#include "portrelay/smtp/command.hpp"
#include "portrelay/smtp/reply.hpp"

namespace portrelay::relay {

class PassthroughRelay {
 public:
  using ReplyCallback = std::function<void(const smtp::Reply& reply)>;

  PassthroughRelay(UpstreamSelector& selector, metrics::Metrics& metrics, std::string session_id);
  ~PassthroughRelay();
  PassthroughRelay(const PassthroughRelay&) = delete;
  PassthroughRelay& operator=(const PassthroughRelay&) = delete;

  void mail(const smtp::PathArgument& sender, ReplyCallback callback);
  void rcpt(const smtp::PathArgument& recipient, ReplyCallback callback);
  MessageBody& body() { return body_; }
  void deliver(ReplyCallback callback);
  // The client abandoned the transaction (RSET, EHLO, rejected content, ...).
  void reset();

 private:
  using Done = std::function<void(bool ok)>;

  void with_upstream(Done done);
  void start_mail(ReplyCallback callback);
  void replay_envelope(Done done);
  void replay_recipient(std::size_t index, Done done);
  void send_data();
  void send_body();
  void endpoint_failed(const UpstreamResponse& response, const char* stage);
  void finish(const smtp::Reply& reply, metrics::MessageResult result);
  void release_upstream();
  bool failover_worthy(const UpstreamResponse& response) const;
  smtp::Reply unreachable_reply() const;
  bool sender_requires_8bit() const;
  std::string mail_command() const;

  UpstreamSelector& selector_;
  metrics::Metrics& metrics_;
  std::string session_id_;
  std::size_t message_count_ = 0;
  std::string message_id_;

  std::unique_ptr<UpstreamConnection> upstream_;
  std::unique_ptr<UpstreamConnection> retired_;  // failed inside its own callback; freed later
  std::unique_ptr<SelectionAttempt> attempt_;
  std::set<std::size_t> tried_;             // endpoints that failed during this transaction
  std::vector<std::string> failure_notes_;  // "label reason" for the 451 text and logs
  std::optional<smtp::Reply> last_upstream_refusal_;  // a 4xx an upstream answered
  std::optional<config::Endpoint> failed_from_;
  std::size_t skipped_for_8bit_ = 0;  // endpoints passed over for lacking 8BITMIME

  smtp::PathArgument sender_;
  std::vector<std::string> recipients_;  // accepted addresses, in order
  MessageBody body_;
  bool transaction_open_ = false;  // MAIL accepted upstream, not finished
  ReplyCallback deliver_callback_;
  std::chrono::steady_clock::time_point deliver_started_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// An upstream reply rendered for the client: one line, with an enhanced status code
// (the upstream's, or `fallback_enhanced` when it sent none).
smtp::Reply client_reply(const smtp::Reply& upstream, const char* fallback_enhanced);

}  // namespace portrelay::relay
