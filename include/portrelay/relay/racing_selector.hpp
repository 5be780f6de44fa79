#pragma once
// Happy-Eyeballs-style endpoint selection (RFC 8305 ideas applied to a chain of ports):
//
//  * Endpoints are tried in preference order: healthy ones in chain order, then those
//    cooling down. The first attempt starts at once; every `stagger` another one starts
//    while fewer than `max_parallel` are running; a failure starts the next at once.
//  * The first endpoint to be ready (TCP, TLS, greeting, EHLO, AUTH) wins; the others are
//    cancelled (closed, counted as cancelled, not as failures).
//  * Failures cool the endpoint down (HealthTable). An attempt that was still not ready a
//    whole `stagger` after it started when another won is "suspect" and cools down too,
//    so later messages skip a silently blocked port (or one that accepts TCP and never
//    greets) instead of paying `stagger` each time.
//  * When every endpoint left is cooling down, a race is abandoned one `stagger` after it
//    started (a recovered endpoint that answers at once still wins): the client gets its
//    451 at once instead of waiting out connect_timeout on a port known to be dead.
//  * Endpoints whose cool-down ended and that are preferred to the best working one are
//    probed in the background; a successful probe fails traffic back and its ready
//    connection goes to the pool. In recovery mode (set_recovery_probing) they are probed
//    before the cool-down ends, on HealthTable's recovery schedule.
//  * Health refresh (options.refresh_interval, [relay] probe_interval): every endpoint is
//    probed once at start and then whenever HealthTable says its health is stale, so what
//    the table and portrelay_upstream_up say is never older than one interval. These probes
//    leave the endpoint available to messages; a ready one's connection goes to the pool.
//  * Probes of either kind are counted in portrelay_upstream_probes_total, never in the
//    connect_* series, which count message traffic.
//  * An endpoint that had failed and is ready again is reported (set_on_endpoint_up).
//  * Ready connections are reused across messages (UpstreamPool); a pooled connection is
//    checked with RSET before use, and a dead one is replaced without blaming the endpoint.
//  * Upstream limits (one UpstreamGate per upstream, i.e. per account across its ports):
//    a race only considers endpoints whose upstream may take a message now (not paused,
//    a token in its bucket, a free connection or an idle pooled one); the message's token
//    is taken when the race is created. When none may, the race waits (a timer for the
//    exact time, or the close of a connection) up to `limit_wait`, then gives up with
//    `Limited`. Every connection, probes included, holds a slot of its upstream's
//    max_connections until it is destroyed; a probe is skipped when there is none. A
//    connection that carried max_messages_per_connection is closed, not pooled.
#include <uv.h>

#include <memory>
#include <optional>
#include <vector>

#include "portrelay/net/loop.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/relay/endpoint_sizes.hpp"
#include "portrelay/relay/health_table.hpp"
#include "portrelay/relay/shared_health.hpp"
#include "portrelay/relay/shared_pauses.hpp"
#include "portrelay/relay/upstream_pool.hpp"
#include "portrelay/relay/upstream_selector.hpp"

namespace portrelay::relay {

struct RacingOptions {
  config::Duration stagger = std::chrono::milliseconds(250);
  std::size_t max_parallel = 3;
  config::Duration cooldown = std::chrono::seconds(30);
  config::Duration cooldown_max = std::chrono::minutes(10);
  config::Duration pool_idle_timeout = std::chrono::seconds(30);
  std::size_t pool_max_per_endpoint = 64;  // config::RelayConfig's default
  // How often the selector looks for due probes (fail-back, recovery, refresh).
  config::Duration probe_tick = std::chrono::seconds(1);
  // Health refresh ([relay] probe_interval); zero: no start-up or periodic probes.
  config::Duration refresh_interval{0};
  // Recovery mode: first probe this long after a failure, doubling per failure up to max.
  config::Duration recovery_probe_min = std::chrono::seconds(1);
  config::Duration recovery_probe_max = std::chrono::seconds(10);
  // Upstream limits: how long a selection waits for one ([relay] max_limit_wait), the
  // pauses, and each upstream's own limits, by Config::upstreams index (missing: none).
  config::Duration limit_wait = std::chrono::seconds(5);
  GateLimits gate_defaults;
  std::vector<config::Upstream> upstreams;
  // Where each upstream's max_recipients_per_day window is kept (the spool's "limits"
  // directory); empty: in memory only (passthrough without a spool), reset by a restart.
  std::string recipient_window_dir;
  // At most one write of a changed window per this long (a crash loses at most that much
  // of the count).
  std::chrono::milliseconds recipient_window_save_interval{1000};
  // [server] workers: the health table of the main loop's selector, shared by this one
  // (null: a table of its own), and whether this selector probes. A worker loop's selector
  // shares the table and does not probe: the main loop's probes serve every loop.
  std::shared_ptr<SharedHealth> shared_health;
  // The same for the upstreams' pauses (null: a board of its own).
  std::shared_ptr<SharedPauses> shared_pauses;
  bool probes = true;

  static RacingOptions from(const config::RelayConfig& relay);
  static RacingOptions from(const config::Config& config);
};

class RacingSelector : public UpstreamSelector {
 public:
  // `routes`: the configuration's [[route]]s (endpoint indices into `endpoints`).
  RacingSelector(net::Loop& loop, std::vector<EndpointRuntimePtr> endpoints,
                 UpstreamTimeouts timeouts, std::string helo_name, RacingOptions options,
                 metrics::Metrics& metrics, std::vector<config::Route> routes = {});
  ~RacingSelector() override;

  using UpstreamSelector::select;
  std::unique_ptr<SelectionAttempt> select(const config::Route& route,
                                           const std::set<std::size_t>& exclude,
                                           Callback callback) override;
  const config::Route& route(std::string_view name) const override;
  const config::Route& route_for_sender(std::string_view sender) const override;
  void release(std::unique_ptr<UpstreamConnection> connection) override;
  void record_transaction_failure(std::size_t endpoint_index,
                                  const AttemptFailure& failure) override;
  const std::vector<EndpointRuntimePtr>& endpoints() const override { return endpoints_; }
  std::optional<std::uint64_t> size_limit(std::size_t index) const override {
    return health_->lock().sizes().limit(index);
  }
  std::uint64_t largest_message(std::uint64_t bound) const override {
    return health_->lock().sizes().largest(bound);
  }
  bool all_cooling_down() const override;
  void set_recovery_probing(bool on) override;
  void set_on_endpoint_up(std::function<void(std::size_t index)> callback) override;
  // A copy of the endpoints' health now (the table may be shared with other loops).
  HealthTable health() const { return health_->snapshot(); }
  // The table itself, and the upstreams' pauses, for the selectors of the daemon's other
  // loops.
  const std::shared_ptr<SharedHealth>& shared_health() const { return health_; }
  const std::shared_ptr<SharedPauses>& shared_pauses() const { return pauses_; }

  const config::UpstreamLimits* limits_of(std::size_t index) const override;
  void record_throttle(std::size_t index, PauseKind kind, const smtp::Reply& reply) override;
  void record_refusal(std::size_t index) override;
  void record_delivered(std::size_t index, std::size_t recipients) override;
  std::optional<UpstreamGate::TimePoint> message_wait() const override;
  void set_on_capacity(std::function<void()> callback) override;
  // The gate of the upstream endpoint `index` belongs to (tests, metrics).
  const UpstreamGate& gate_of(std::size_t index) const;

  // Called on a selector built for a reloaded configuration, before its first use: takes
  // over `previous`'s health memory for the endpoints whose connection settings did not
  // change (same identity, same addresses, TLS verification and credentials).
  void inherit_health(const RacingSelector& previous);
  // This selector's configuration was replaced (reload) or the daemon stops: background
  // probes stop, the pool is emptied (QUIT to each) and connections handed back later are
  // closed instead of pooled. Sessions that still use it finish their transactions on it.
  void retire();
  void shutdown() { retire(); }

 private:
  class Race;
  struct Probe;
  struct Gates;
  struct DailyCount;
  std::size_t upstream_of(std::size_t index) const;
  UpstreamGate& gate(std::size_t index);
  bool idle_connection(std::size_t upstream) const;
  // The upstream's gate, asked with its recipient window's answer.
  std::optional<UpstreamGate::TimePoint> upstream_wait(std::size_t upstream,
                                                       UpstreamGate::TimePoint now,
                                                       bool idle) const;
  void save_recipient_windows();
  // Takes a slot of the upstream's max_connections for `connection`, or says there is none.
  bool lease_connection(UpstreamConnection& connection);
  void capacity_changed();
  void publish_gate(std::size_t upstream);
  // Takes over the pauses other loops' selectors published since the last look.
  void adopt_shared_pauses();
  // Tells the other loops that `upstream`'s gate is paused now.
  void share_pause(std::size_t upstream);
  void arm_pause_timer();
  enum class ProbeKind { FailBack, Refresh };
  std::unique_ptr<UpstreamConnection> new_connection(std::size_t index);
  void record_ready(const UpstreamConnection& connection, bool probe = false);
  void record_failure(std::size_t index, const AttemptFailure& failure, bool probe = false);
  template <typename Count>
  void cool_down(std::size_t index, const AttemptFailure& failure, Count count);
  void probe_due_endpoints();
  void start_probe(std::size_t index, ProbeKind kind);
  void probe_finished(UpstreamConnection* connection, const std::optional<AttemptFailure>& failure);
  void endpoint_came_back(std::size_t index);
  void report_endpoints_up();

  net::Loop& loop_;
  std::vector<EndpointRuntimePtr> endpoints_;
  std::vector<config::Route> routes_;
  config::Route default_route_;  // every endpoint, in chain order
  UpstreamTimeouts timeouts_;
  std::string helo_name_;
  RacingOptions options_;
  metrics::Metrics& metrics_;
  // One per daemon (RacingOptions::shared_health): the health table and each endpoint's EHLO
  // SIZE, learned at every ready connection.
  std::shared_ptr<SharedHealth> health_;
  UpstreamPool pool_;
  net::Timer probe_timer_;
  std::vector<std::unique_ptr<Probe>> probes_;
  bool recovery_probing_ = false;
  std::function<void(std::size_t index)> on_endpoint_up_;
  net::Timer endpoint_up_timer_;           // reports on a later turn, never inside a callback
  std::vector<std::size_t> endpoints_up_;  // waiting for that turn
  bool retired_ = false;
  std::shared_ptr<Gates> gates_;
  std::shared_ptr<SharedPauses> pauses_;        // one per daemon: see RacingOptions::shared_pauses
  std::uint64_t pauses_seen_ = 0;               // pauses_->version() at the last adopt
  std::vector<std::size_t> endpoint_upstream_;  // by endpoint index
  std::vector<Race*> waiting_;                  // races waiting for an upstream's limits
  std::function<void()> on_capacity_;
  net::Timer capacity_timer_;     // wakes the waiting on a later turn
  net::Timer pause_timer_;        // the end of the next pause (gauge, waiters)
  net::Timer window_save_timer_;  // the next write of the changed recipient windows
  bool window_save_due_ = false;
};

}  // namespace portrelay::relay
