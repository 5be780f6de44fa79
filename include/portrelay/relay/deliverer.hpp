#pragma once
// relay::Deliverer: carries one message at a time to the upstream chain. Every decision is
// relay::Transaction's; this class is the glue that carries out its actions with a
// selector (racing, health memory, pool, failover), an upstream connection and the
// message body, and reports the result as a DeliveryReport, never as reply text to parse.
//
// Two ways in, one engine:
//  * client-paced (open, add_recipient, send): a local client's session, through the
//    PassthroughRelay or FallbackSink adapters. The upstream answers each MAIL and RCPT
//    before the client hears it, so refusals reach the client where they happen.
//  * whole message (deliver): the spool's background delivery of a queued message.
//
// Contract: each callback is called exactly once (possibly before the call that passed it
// returns), unless reset() runs or the Deliverer is destroyed first; then never. The
// body passed to send() or deliver() must stay unchanged until its callback ran or
// reset(). Nothing here counts or logs a message's outcome: the outermost owner does,
// once (MessageLedger).
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/relay/delivery_report.hpp"
#include "portrelay/relay/message_body.hpp"
#include "portrelay/relay/transaction.hpp"
#include "portrelay/relay/upstream_selector.hpp"

namespace portrelay::relay {

class Deliverer {
 public:
  // The client's answer; `ended` is set when this answer ended the message (an upstream's
  // verdict on the final dot, or no endpoint left), with what became of it.
  using Answer = std::function<void(const smtp::Reply& reply, const DeliveryReport* ended)>;
  using Done = std::function<void(DeliveryReport report)>;

  // The deliverer keeps its selector alive: a session that started before a configuration
  // reload finishes on the selector (chain, pool, health) it started with. `log_id` names
  // the session (or the queued message) in log lines.
  Deliverer(net::Loop& loop, std::shared_ptr<UpstreamSelector> selector, metrics::Metrics& metrics,
            std::string log_id);
  ~Deliverer();
  Deliverer(const Deliverer&) = delete;
  Deliverer& operator=(const Deliverer&) = delete;

  // Client-paced: MAIL (opens a transaction; `message_id` names it in logs), one RCPT,
  // and the end of data. `route` names the [[route]] whose upstreams carry the message
  // (the selector's route(): "" or an unknown name is the default route).
  void open(const smtp::PathArgument& sender, std::string message_id, Answer answer,
            std::string_view route = {});
  void add_recipient(const std::string& address, Answer answer);
  void send(const MessageBody& body, Answer answer);
  // Abandons the transaction (the pool clears it with RSET before reuse).
  void reset();

  // Whole message: MAIL, every recipient, then the body if any recipient was accepted.
  // The report has one RecipientReport per `recipients`, in order.
  void deliver(const smtp::PathArgument& sender, const std::vector<std::string>& recipients,
               const MessageBody& body, std::string message_id, Done done,
               std::string_view route = {});

  const UpstreamSelector& selector() const { return *selector_; }

 private:
  void run(std::vector<Action> actions);
  void select();
  void on_response(const UpstreamResponse& response);
  void report_failure(const Action& failed);
  DeliveryReport ended_report(Action&& reply) const;
  void release_upstream();
  std::optional<ReadyEndpoint> held_connection(const smtp::PathArgument& sender) const;
  // The held connection's account identity for this message's header, if it has one.
  std::optional<BodyStreamer::Rewrite> upstream_rewrite() const;
  std::string held_label() const;
  const config::Endpoint& endpoint(std::size_t index) const;
  // Whether the message's route may use this endpoint (a connection held from the last
  // message may belong to another route's upstream).
  bool on_route(std::size_t endpoint_index) const;
  // deliver()'s steps.
  void deliver_next_recipient();
  // Whose outcome the message's report decides when deliver() ends.
  enum class Decides {
    Everyone,  // nothing got past MAIL: the message's answer is every recipient's
    Accepted,  // the final dot answered for the recipients whose RCPT was accepted
    Nobody,    // no RCPT was accepted: each keeps its own answer
  };
  void deliver_finish(DeliveryReport report, Decides decides);

  net::Loop& loop_;
  std::shared_ptr<UpstreamSelector> selector_;  // declared before what it must outlive
  metrics::Metrics& metrics_;
  std::string log_id_;
  std::string message_id_;
  const config::Route* route_ = nullptr;  // the selector's, set by open()

  std::optional<Transaction> transaction_;
  std::unique_ptr<UpstreamConnection> upstream_;
  std::unique_ptr<SelectionAttempt> attempt_;
  const MessageBody* body_ = nullptr;
  Answer answer_;  // the pending request's
  std::chrono::steady_clock::time_point data_ended_;

  // deliver() in progress.
  struct Whole {
    std::vector<RecipientReport> reports;  // one per recipient named, address filled in
    std::size_t next = 0;                  // into reports: the next RCPT to send
    std::size_t accepted = 0;
    Done done;
  };
  std::optional<Whole> whole_;
  std::optional<std::uint64_t> whole_size_;  // deliver()'s body size, known before MAIL
};

}  // namespace portrelay::relay
