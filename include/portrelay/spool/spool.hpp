#pragma once
// spool::Spool: the durable queue of one daemon, on its event loop.
//
//  * accept() stores a message (group commit, committer.hpp) and answers only when it is
//    durable; admission() says beforehand whether there is room (452 otherwise).
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
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "portrelay/base/result.hpp"
#include "portrelay/config/config.hpp"
#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/relay/message_body.hpp"
#include "portrelay/relay/message_sink.hpp"
#include "portrelay/relay/upstream_selector.hpp"
#include "portrelay/smtp/command.hpp"
#include "portrelay/smtp/reply.hpp"
#include "portrelay/spool/committer.hpp"
#include "portrelay/spool/delivery.hpp"
#include "portrelay/spool/delivery_plan.hpp"
#include "portrelay/spool/maildrop.hpp"
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

  Spool(net::Loop& loop, config::SpoolConfig config, std::string hostname,
        metrics::Metrics& metrics);
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
  // nullopt if a message of `size` octets fits; else the 452 to give the client.
  std::optional<smtp::Reply> admission(std::uint64_t size);
  // `origin` names where the message came from in the `queued` log line: the client
  // session ("s12") or the message a bounce reports on ("bounce:<id>").
  void accept(const smtp::PathArgument& sender, const std::vector<std::string>& recipients,
              std::unique_ptr<relay::MessageBody> body, const std::string& origin, Accepted done);

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

  std::size_t size() const { return messages_.size(); }
  const SpoolDirectory& directory() const { return *directory_; }
  std::uint64_t syncs() const { return committer_ ? committer_->syncs() : 0; }

 private:
  struct Entry {
    RecordLayout layout;
    DeliveryState state;
    bool in_flight = false;
    bool bouncing = false;  // settled; its bounce is being stored: nothing else may touch it
    bool failed = false;    // in failed/
    std::int64_t failed_at_ms = 0;
    bool waiting_for_chain = false;  // last attempt found no endpoint to take it
  };
  using DueKey = std::tuple<std::int64_t, std::int64_t, std::string>;  // next, arrival, id

  std::string next_id();
  // Counts `entry` in (+1) or out (-1) of the gauges' totals, by its current category;
  // called around every change of category (attempts, failed).
  void account(const std::string& id, const Entry& entry, int sign);
  void add(Entry entry);
  void schedule(const std::string& id, Entry& entry);
  void unschedule(const std::string& id, const Entry& entry);
  void pump();
  void start_delivery(const std::string& id, Entry& entry);
  // Ends a delivery in flight from outside its callbacks (operator command, shutdown).
  void abandon_delivery(const std::string& id);
  static bool busy(const Entry& entry) { return entry.in_flight || entry.bouncing; }
  static bool has_pending(const DeliveryState& state);
  void attempt_done(const std::string& id, AttemptResult result);
  // Carries out a settlement: rewrite the state and reschedule, or leave the queue
  // (removed, bounced, or kept in failed/). `count`: in the message metrics (not again for
  // a message finished a second time).
  void settled(const std::string& id, Settlement settlement, bool count = true);
  // A message with no pending recipient left: settle it as it stands.
  void finish_settled(const std::string& id);
  void leave_queue(const std::string& id, bool keep_in_failed);
  // The host of the endpoint labelled `label` ("name:port"), for a DSN.
  std::string host_of(const std::string& label) const;
  void send_bounce(const std::string& id, const Settlement& settlement,
                   std::string original_headers, std::function<void()> then);
  void tick();
  // Queues what `sendmail` left in the maildrop while no daemon ran; at start and each tick.
  void pick_up_dropped();
  void finish_shutdown();
  void publish_metrics();
  void on_endpoint_up();
  double jitter();
  RetryPolicy policy() const;

  net::Loop& loop_;
  config::SpoolConfig config_;
  std::string hostname_;
  metrics::Metrics& metrics_;
  std::unique_ptr<SpoolDirectory> directory_;
  std::unique_ptr<Committer> committer_;
  std::shared_ptr<relay::UpstreamSelector> selector_;

  std::map<std::string, Entry> messages_;
  std::set<DueKey> due_;
  std::map<std::string, std::unique_ptr<Delivery>> deliveries_;
  std::size_t storing_ = 0;  // accepted, not yet durable
  std::uint64_t storing_bytes_ = 0;
  std::uint64_t queued_bytes_ = 0;  // queue/ (not failed/)
  std::size_t queued_count_ = 0, deferred_count_ = 0, failed_count_ = 0;
  using ArrivalKey = std::pair<std::int64_t, std::string>;
  std::set<ArrivalKey> by_arrival_;     // queue/ only: the oldest is first
  std::unique_ptr<Maildrop> maildrop_;  // null if it could not be set up (logged)
  MaildropLimits maildrop_limits_;
  std::set<std::string> picking_up_;  // dropped files being stored, not yet removed
  net::Timer tick_timer_;
  std::uint64_t ticks_ = 0;
  std::uint32_t id_sequence_ = 0;
  std::mt19937 random_;
  bool stopping_ = false;
  bool no_new_deliveries_ = false;
  net::Timer grace_timer_;
  std::function<void()> on_stopped_;
};

}  // namespace portrelay::spool
