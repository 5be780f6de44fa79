#pragma once
// spool::Spool: the durable queue of one daemon, on its event loop.
//
//  * accept() stores a message (group commit, committer.hpp) and answers only when it is
//    durable; admission() says beforehand whether there is room (a pure question) and
//    refuse() counts and logs a refusal (452 otherwise).
//  * Queued messages are delivered in the background, oldest due first, at most
//    max_deliveries at a time, each attempt a spool::Delivery over the current upstream
//    selector. Results are settled per recipient (delivery_plan.hpp); a message leaves
//    the queue when none is pending: removed when all were delivered, bounced to its
//    sender (RFC 3464) or kept in failed/ when some were refused for good or expired.
//  * While every endpoint cools down, nothing is attempted (cool-downs are respected) and
//    the selector probes the chain on a short schedule; the moment an endpoint is back,
//    every waiting message is due at once.
//  * The in-memory index holds envelopes and states, never bodies.
//
// Loop thread only.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "portrelay/base/result.hpp"
#include "portrelay/config/config.hpp"
#include "portrelay/config/identity_rewriter.hpp"
#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/relay/envelope_policy.hpp"
#include "portrelay/relay/message_body.hpp"
#include "portrelay/relay/message_sink.hpp"
#include "portrelay/relay/upstream_selector.hpp"
#include "portrelay/smtp/command.hpp"
#include "portrelay/smtp/reply.hpp"
#include "portrelay/spool/admission.hpp"
#include "portrelay/spool/clock.hpp"
#include "portrelay/spool/committer.hpp"
#include "portrelay/spool/delivery.hpp"
#include "portrelay/spool/delivery_plan.hpp"
#include "portrelay/spool/delivery_scheduler.hpp"
#include "portrelay/spool/maildrop.hpp"
#include "portrelay/spool/queue_index.hpp"
#include "portrelay/spool/spool_directory.hpp"

namespace portrelay::spool {

// What `portrelay queue list` shows of one message.
struct QueueEntryView {
  std::string id;
  std::int64_t arrival_ms = 0;
  std::uint64_t size = 0;
  std::string sender;
  std::vector<std::string> recipients;
  DeliveryState state;
  bool failed = false;
  bool in_flight = false;
};

class Spool {
 public:
  using Accepted = std::function<void(Result<std::string> queue_id)>;

  // `clock`: where time and jitter come from (tests pass a fake one).
  Spool(net::Loop& loop, config::SpoolConfig config, std::string hostname,
        metrics::Metrics& metrics, Clock clock = system_clock());
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Creates and locks the directory, removes what was never acknowledged, loads the
  // queue. Throws std::runtime_error (another daemon holds the spool, no permission).
  void start();
  // Where deliveries go: the current configuration's selector (each Delivery keeps the one
  // it started with). At start and after every reload.
  void set_upstream(std::shared_ptr<relay::UpstreamSelector> selector);
  // New limits and retry schedule (a reload); `dir` must not change (restart_required).
  void reconfigure(const config::SpoolConfig& config);

  // What a dropped file (maildrop.hpp) may hold: the SMTP listener's own limits.
  void set_maildrop_limits(const MaildropLimits& limits) { maildrop_limits_ = limits; }
  // [rewrite] and [aliases] for dropped messages, applied at pickup: that is their
  // acceptance (`sendmail` added Date and Message-ID already). Null: taken as they are.
  void set_identity(std::shared_ptr<const config::IdentityRewriter> identity) {
    identity_ = std::move(identity);
  }
  // Whether a message of `size` octets fits now. Only asks: nothing is counted or logged.
  AdmissionVerdict admission(std::uint64_t size) const;
  std::optional<std::uint64_t> free_disk() const;  // sampled, see spool.cpp
  // A refusal of a message of `size` octets: counted (portrelay_spool_refusals_total) and
  // logged when it is for lack of room; returns the reply to give the client.
  smtp::Reply refuse(AdmissionVerdict verdict, std::uint64_t size);
  // admission(), then refuse() if it is not Admitted: nullopt if the message fits.
  std::optional<smtp::Reply> admit(std::uint64_t size);
  // `origin` names where the message came from in the `queued` log line: the client
  // session ("s12") or the message a bounce reports on ("bounce:<id>").
  // `route`: the [[route]] that carries it; nullopt chooses by `sender` (route_for_sender).
  void accept(const smtp::PathArgument& sender, const std::vector<std::string>& recipients,
              std::unique_ptr<relay::MessageBody> body, const std::string& origin, Accepted done,
              std::optional<std::string> route = std::nullopt);
  // The [[route]] mail from `sender` is queued on, by the current selector's routes: its name,
  // or "default".
  std::string route_for_sender(std::string_view sender) const;
  // What a dropped message must pass, as an SMTP client's envelope would (allowed_senders,
  // require_route, aliases). Null: no checks. At start and after every reload.
  void set_envelope_policy(std::shared_ptr<const relay::EnvelopePolicy> policy) {
    envelope_policy_ = std::move(policy);
  }

  // Stops starting deliveries, lets those in flight finish for up to `grace`, abandons
  // the rest (they stay queued), finishes the writes. Then `done`.
  void shutdown(config::Duration grace, std::function<void()> done);
  // No delivery starts from now on (SIGTERM: the sessions' grace has begun); the ones in
  // flight go on. shutdown() follows.
  void stop_starting_deliveries() { no_new_deliveries_ = true; }

  // Operator commands (the control socket). Each returns what happened in words.
  Result<std::string> retry(const std::string& id);  // "" or "all": every message
  Result<std::string> remove(const std::string& id);
  Result<std::string> bounce(const std::string& id);
  std::vector<QueueEntryView> list() const;

  std::size_t size() const { return index_.size(); }
  const SpoolDirectory& directory() const { return *directory_; }
  std::uint64_t syncs() const { return committer_ ? committer_->syncs() : 0; }

 private:
  using Stage = QueueEntry::Stage;

  std::string next_id();
  AdmissionLimits admission_limits() const;
  DeliveryScheduler::Limits scheduler_limits() const;
  // Scheduling (delivery_scheduler.hpp decides; these carry it out).
  void pump();
  void tick();
  void expire(const DeliveryScheduler::Expiry& expiry);
  void on_endpoint_up();
  // Delivery: one attempt per message in flight, and what its result means.
  void start_delivery(const std::string& id);
  // Ends a delivery in flight from outside its callbacks (operator command, shutdown).
  void abandon_delivery(const std::string& id);
  void attempt_done(const std::string& id, AttemptResult result);
  // Settlement, carried out: rewrite the state and wait again, or leave the queue (removed,
  // bounced, or kept in failed/). `count`: in the message metrics (not again for a message finished
  // a second time).
  void settled(const std::string& id, Settlement settlement, bool count = true);
  // A message with no pending recipient left: settle it as it stands.
  void finish_settled(const std::string& id);
  // How a message leaves the queue. Delivered (to every recipient): its `delivered` line
  // said so, and its removal need not survive a crash (SpoolChange::remove). Other: logged
  // as `removed`, durably (an operator's delete, a bounce sent, an expiry).
  enum class Leaving { Delivered, Other };
  void leave_queue(const std::string& id, bool keep_in_failed, Leaving leaving = Leaving::Other);
  // The host of the endpoint labelled `label` ("name:port"), for a DSN.
  std::string host_of(const std::string& label) const;
  void send_bounce(const std::string& id, const Settlement& settlement,
                   std::string original_headers, std::function<void()> then);
  // Queues what `sendmail` left in the maildrop while no daemon ran; at start and each tick.
  void pick_up_dropped();
  // The acceptance rewrite of a dropped message: its sender and header (identity_ set).
  void rewrite_dropped(DroppedMessage& dropped, const std::string& name,
                       smtp::PathArgument& sender);
  void finish_shutdown();
  void publish_metrics();

  net::Loop& loop_;
  config::SpoolConfig config_;
  std::string hostname_;
  metrics::Metrics& metrics_;
  std::unique_ptr<SpoolDirectory> directory_;
  std::unique_ptr<Committer> committer_;
  std::shared_ptr<relay::UpstreamSelector> selector_;

  Clock clock_;
  QueueIndex index_;
  DeliveryScheduler scheduler_;
  std::map<std::string, std::unique_ptr<Delivery>> deliveries_;
  std::size_t storing_ = 0;  // accepted, not yet durable
  std::uint64_t storing_bytes_ = 0;
  mutable std::optional<std::uint64_t> free_disk_;
  mutable std::optional<std::chrono::steady_clock::time_point> free_disk_sampled_;
  std::unique_ptr<Maildrop> maildrop_;  // null if it could not be set up (logged)
  MaildropLimits maildrop_limits_;
  std::shared_ptr<const relay::EnvelopePolicy> envelope_policy_;
  std::shared_ptr<const config::IdentityRewriter> identity_;
  std::set<std::string> picking_up_;  // dropped files being stored, not yet removed
  net::Timer tick_timer_;
  net::Timer limit_timer_;  // pump() when an upstream's limits allow the next message
  std::uint64_t ticks_ = 0;
  std::uint32_t id_sequence_ = 0;
  bool stopping_ = false;
  bool no_new_deliveries_ = false;
  net::Timer grace_timer_;
  std::function<void()> on_stopped_;
};

}  // namespace portrelay::spool
