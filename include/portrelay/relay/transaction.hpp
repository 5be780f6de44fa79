#pragma once
// relay::Transaction: every decision of relaying one message, and nothing else.
//
// It holds the envelope, the per-recipient outcomes and the endpoints tried, takes what
// happened in (the client's MAIL / RCPT / end of data, a ready connection or none, the
// upstream's answer or a broken connection) and returns the actions to carry out (select
// a connection, send a command, stream the body, release or discard the connection,
// record an endpoint failure, answer the client). No libuv, no sockets, no timers: the
// glue (Deliverer) executes the actions, and the unit tests drive it reply by reply.
//
// Contract:
//  * The client hears 2xx after end of data only when an upstream answered 2xx to the
//    final dot of this message. Every other way out is the upstream's own 5xx, its 4xx, or
//    a locally made 4xx.
//  * When an endpoint fails during the transaction, the envelope (MAIL plus every
//    recipient the client was told is accepted) is replayed on the next endpoint, then the
//    request the client is waiting for is retried there. A replayed recipient that the
//    new endpoint refuses means that endpoint cannot carry the message.
//  * At most one client request is pending at a time (SMTP is strictly in order), and a
//    client answer (Action::Reply) is always the last action of a batch: the caller may
//    be gone after delivering it.
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "portrelay/config/config.hpp"
#include "portrelay/relay/upstream_gate.hpp"
#include "portrelay/relay/upstream_response.hpp"
#include "portrelay/smtp/command.hpp"
#include "portrelay/smtp/reply.hpp"

namespace portrelay::relay {

// Where in the dialogue an upstream answer arrived.
enum class Stage { Greeting, Ehlo, Mail, Rcpt, Data, EndOfData };
const char* to_string(Stage stage);

enum class Verdict {
  Accept,            // the step is done: 220 greeting, 2xx, 354 to DATA
  PermanentRefusal,  // 5xx: the upstream's verdict on this message (or recipient)
  TransientRefusal,  // a 4xx about one recipient: the client hears it as it is
  NextEndpoint,      // this endpoint cannot carry the message now: try the next one
  Throttled,         // the upstream says "slow down" or "quota reached": pause the whole
                     // upstream (every port), never bounce, try the next upstream
};
const char* to_string(Verdict verdict);

// The one place where an upstream answer becomes a decision.
//  * A broken connection, a 421, or a reply out of protocol (1xx/3xx where a final answer
//    was due, anything but 354 to DATA short of a 5xx) is NextEndpoint at every stage.
//  * A 4xx is NextEndpoint, except at RCPT, where it is about that recipient.
//  * A 5xx is PermanentRefusal at MAIL, RCPT, DATA and end of data; at the greeting and
//    EHLO it says the endpoint will not serve us, so NextEndpoint.
//  * With the upstream's `rules` (its throttle_patterns and quota_patterns), a reply that
//    means "slow down" or "quota reached" at MAIL, DATA or end of data is Throttled
//    (throttle_kind), even a 5xx quota refusal. At RCPT only a quota reply is: "452 too
//    many recipients" is about that message, not the account.
Verdict classify(Stage stage, const UpstreamResponse& response,
                 const config::UpstreamLimits* rules = nullptr);

// Whether a reply means the account is throttled or out of quota:
//  * Quota: a quota pattern in the text (any 4xx/5xx), or the enhanced code 5.4.5 / 4.4.5
//    with "daily" or "limit" in the text (Gmail's "550 5.4.5 Daily user sending limit").
//  * Throttle: a 4xx whose text has a throttle pattern, or 432/451/454 with the enhanced
//    code 4.7.0, 4.3.2 or 4.7.28 (SES 454, M365 432 4.3.2, Outlook's 451 4.7.28...). A
//    421 only by its text: a plain "421 4.3.2 shutting down" is not about us.
std::optional<PauseKind> throttle_kind(const smtp::Reply& reply,
                                       const config::UpstreamLimits& rules);

// Whether a failure at this point should also cool the endpoint down (HealthTable), as a
// connect failure does. Yes for a broken connection, a timeout, a 421 or a protocol
// violation inside the transaction: an endpoint that hangs after the final dot would
// otherwise cost every later message the whole data timeout. No for an ordinary 4xx (the
// server is alive and answering; it costs the next message one round trip, not a
// timeout) and for a pooled connection that was closed under us (it went stale while
// idle, which says nothing about the endpoint).
bool counts_against_health(const UpstreamResponse& response, bool reused_connection);

// The health-table reason for a failure inside a transaction.
FailureReason transaction_failure_reason(const UpstreamResponse& response);

// A ready upstream connection as the transaction sees it.
struct ReadyEndpoint {
  std::size_t index = 0;  // position in the chain
  std::string label;      // "name:port"
  bool eight_bit_mime = false;
  bool size = false;
  bool reused = false;           // came out of the pool rather than a fresh connect
  std::uint64_t size_limit = 0;  // its EHLO SIZE; 0: none announced
  // The upstream's reply rules (throttle and quota patterns); null: none (tests).
  const config::UpstreamLimits* rules = nullptr;
  // The envelope sender on this endpoint when its account's identity ([[upstream]]
  // sender) replaces the transaction's; nullopt keeps it.
  std::optional<std::string> mail_from = std::nullopt;
};

struct FailedEndpoint {
  std::size_t index = 0;
  std::string label;
  AttemptFailure failure;
};

// What a selection produced: a ready connection or none, and the endpoints that failed
// on the way (already recorded in the health table by the selector).
struct SelectionReport {
  std::optional<ReadyEndpoint> ready;
  std::vector<FailedEndpoint> failures;
};

// How a finished message is counted (portrelay_messages_total{result}).
enum class Outcome { Relayed, Failed, Deferred };

struct Action {
  enum class Kind {
    Select,          // get a ready connection, excluding tried()
    Send,            // send `line` (MAIL, RCPT or DATA) and wait for its reply
    StreamBody,      // send the body dot-stuffed, then ".", and wait for the reply
    Release,         // the connection is healthy: back to the pool
    Discard,         // the connection failed or is out of step: close it, never reuse it
    EndpointFailed,  // record `failure` of endpoint `endpoint` at `stage` (logs, metrics,
                     // and the health table when `health` is set)
    Failover,        // count a move from endpoint `from` to endpoint `endpoint`
    Reply,           // answer the client's pending request; `outcome` ends the message
                     // (then `label` names the endpoint that answered, if any)
    Throttled,       // endpoint `endpoint`'s upstream said "slow down" (`pause`): pause it
    Delivered,       // endpoint `endpoint` took a message: its run of refusals is over
  };
  Kind kind = Kind::Select;
  std::string line;
  std::size_t endpoint = 0;
  std::size_t from = 0;
  std::string label;  // of `endpoint`
  std::string stage;
  AttemptFailure failure;
  bool health = false;
  bool refusal = false;        // EndpointFailed by a 4xx reply (outlier detection counts those)
  std::size_t recipients = 0;  // Delivered: recipients the upstream accepted (RCPT 250)
  PauseKind pause = PauseKind::Throttle;
  smtp::Reply reply;
  std::optional<Outcome> outcome;
};
// One line per action, e.g. "send RCPT TO:<b@x>", "reply 250 2.1.5 Ok": for tests and
// debugging.
std::string to_string(const Action& action);

struct RecipientOutcome {
  std::string address;
  Verdict verdict = Verdict::Accept;  // Accept, PermanentRefusal or TransientRefusal
  smtp::Reply reply;                  // the upstream's answer
  std::string endpoint;               // label of the endpoint that gave it
};

class Transaction {
 public:
  // `connection`: a ready connection the session already holds with no transaction open
  // on it (after an earlier message or a refused MAIL), used before selecting another.
  // `message_size`: the message's size when known before end of data (a queued one);
  // otherwise the client's MAIL ... SIZE=, if any, until end_of_data says.
  Transaction(smtp::PathArgument sender, std::optional<ReadyEndpoint> connection,
              std::optional<std::uint64_t> message_size = std::nullopt);

  // The client's requests. Each returns the actions to carry out now.
  std::vector<Action> mail();
  std::vector<Action> rcpt(const std::string& address);
  // The body is complete. `body_stored` false: it could not be kept locally (disk error).
  // `size`: its octets, when known; an endpoint whose EHLO SIZE is smaller is skipped.
  std::vector<Action> end_of_data(bool body_stored,
                                  std::optional<std::uint64_t> size = std::nullopt);

  // Endpoint `index` is known, by its EHLO SIZE `limit`, to refuse this message (see
  // message_size()): it is not tried for it. When every endpoint left out is left out for
  // this, the message is refused with 552 5.3.4, a permanent failure.
  void skip_for_size(std::size_t index, const std::string& label, std::uint64_t limit);

  // What the glue observed.
  std::vector<Action> selected(const SelectionReport& report);
  std::vector<Action> response(const UpstreamResponse& response);

  const smtp::PathArgument& sender() const { return sender_; }
  // Recipients the client was told are accepted, in order.
  const std::vector<std::string>& recipients() const { return recipients_; }
  // Every recipient's answer, accepted or not.
  const std::vector<RecipientOutcome>& recipient_outcomes() const { return outcomes_; }
  // Endpoints that failed during this transaction (fresh connections only).
  const std::set<std::size_t>& tried() const { return tried_; }
  // The endpoint of the connection in use, if any.
  const std::optional<ReadyEndpoint>& connection() const { return connection_; }
  bool finished() const { return finished_; }
  // What the message is known to weigh so far (SIZE=, or the body at end of data).
  std::optional<std::uint64_t> message_size() const { return message_size_; }
  // An upstream throttled this message (it waits for the gate, not for a retry backoff).
  bool throttled() const { return throttled_; }

 private:
  enum class Pending { None, Mail, Rcpt, EndOfData };

  void advance(std::vector<Action>& actions);
  void send(std::vector<Action>& actions, Stage stage, std::string line);
  void endpoint_failed(std::vector<Action>& actions, const UpstreamResponse& response,
                       std::string stage);
  void throttled(std::vector<Action>& actions, const smtp::Reply& reply, Stage stage);
  void answer(std::vector<Action>& actions, smtp::Reply reply);
  void finish(std::vector<Action>& actions, smtp::Reply reply, Outcome outcome);
  smtp::Reply unreachable_reply() const;
  std::string mail_command() const;
  bool requires_8bit() const;
  bool replaying() const;
  bool skipped_all_for_size() const;

  smtp::PathArgument sender_;
  std::vector<std::string> recipients_;
  std::vector<RecipientOutcome> outcomes_;
  Pending pending_ = Pending::None;
  std::string pending_recipient_;
  bool finished_ = false;

  // The upstream side.
  std::optional<ReadyEndpoint> connection_;
  bool selecting_ = false;
  Stage awaiting_ = Stage::Mail;  // stage of the command in flight
  bool in_flight_ = false;
  bool mail_on_connection_ = false;           // MAIL accepted on this connection
  std::size_t recipients_on_connection_ = 0;  // of recipients_, accepted on this connection

  // What went wrong so far, for the client's 451 and the failover metric.
  std::set<std::size_t> tried_;
  std::vector<std::string> failure_notes_;
  std::optional<smtp::Reply> last_upstream_refusal_;
  std::optional<std::size_t> failed_from_;
  std::size_t skipped_for_8bit_ = 0;
  std::size_t skipped_for_size_ = 0;  // endpoints whose EHLO SIZE is below the message
  std::uint64_t largest_skipped_limit_ = 0;
  std::optional<std::uint64_t> message_size_;
  std::size_t skipped_cooling_down_ = 0;  // notes of endpoints the selector gave up on
  std::size_t skipped_limited_ = 0;       // notes of upstreams held back by their limits
  bool throttled_ = false;
};

// An upstream reply rendered for the client: one line, with an enhanced status code
// (the upstream's, or `fallback_enhanced` when it sent none).
smtp::Reply client_reply(const smtp::Reply& upstream, const char* fallback_enhanced);

}  // namespace portrelay::relay
