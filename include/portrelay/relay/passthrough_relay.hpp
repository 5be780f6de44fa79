#pragma once
// Passthrough relaying for one client session: the envelope goes upstream as the client
// sends it (so recipient refusals reach the client at RCPT), the body is kept locally
// until the client's end of data, then sent. Every decision is relay::Transaction's; this
// class is the glue that carries out its actions with a selector, an upstream connection
// and the message body, and reports them in logs and metrics.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/relay/message_body.hpp"
#include "portrelay/relay/message_sink.hpp"
#include "portrelay/relay/transaction.hpp"
#include "portrelay/relay/upstream_selector.hpp"

namespace portrelay::relay {

class PassthroughRelay : public MessageSink {
 public:
  // Who the relay answers, which decides how a finished message is counted and logged.
  enum class Role {
    ClientSession,  // a local client: portrelay_messages_total and a `message` log line
    SpoolFallback,  // same, except a deferral: the caller queues the message instead
    SpoolDelivery,  // the spool delivering a queued message: a `delivery_attempt` log
                    // line with the queue id; the spool counts the outcome
  };

  // The relay keeps its selector alive: a session that started before a configuration
  // reload finishes on the selector (chain, pool, health) it started with. With
  // Role::SpoolDelivery `session_id` is the queue id.
  PassthroughRelay(net::Loop& loop, std::shared_ptr<UpstreamSelector> selector,
                   metrics::Metrics& metrics, std::string session_id,
                   Role role = Role::ClientSession);
  ~PassthroughRelay() override;
  PassthroughRelay(const PassthroughRelay&) = delete;
  PassthroughRelay& operator=(const PassthroughRelay&) = delete;

  void sender(const smtp::PathArgument& sender, ReplyCallback callback) override;
  void recipient(const smtp::PathArgument& recipient, ReplyCallback callback) override;
  MessageBody& body() override { return *body_; }
  // Hands over the current message's body (kept after commit() answered, until the next
  // message or reset()) and starts a fresh one: a deferred message goes to the spool.
  std::unique_ptr<MessageBody> take_body();
  void commit(ReplyCallback callback) override;
  void reset() override;

 private:
  void run(std::vector<Action> actions);
  void select();
  void on_response(const UpstreamResponse& response);
  void report_failure(const Action& failed);
  void report_message(const Action& reply);
  void release_upstream();
  std::optional<ReadyEndpoint> held_connection() const;
  const config::Endpoint& endpoint(std::size_t index) const;

  net::Loop& loop_;
  std::shared_ptr<UpstreamSelector> selector_;  // declared before what it must outlive
  metrics::Metrics& metrics_;
  std::string session_id_;
  Role role_;
  std::size_t message_count_ = 0;
  std::string message_id_;

  std::optional<Transaction> transaction_;
  std::unique_ptr<UpstreamConnection> upstream_;
  std::unique_ptr<SelectionAttempt> attempt_;
  std::unique_ptr<MessageBody> body_;
  ReplyCallback reply_;  // the client's pending request
  std::chrono::steady_clock::time_point commit_started_;
};

}  // namespace portrelay::relay
