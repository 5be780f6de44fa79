#pragma once
// Every metric family portrelay exports, in one place. Names and labels are a public
// interface (README "Metrics"). Label values come only from the configuration.
#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "portrelay/base/failure_reason.hpp"
#include "portrelay/config/config.hpp"

// Only pointers to prometheus-cpp types appear here: its headers reach metrics.cpp and
// the exposer in daemon.cpp, not every file that counts something.
namespace prometheus {
class Collectable;
class Counter;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace portrelay::metrics {

// A message's final outcome, counted once by its outermost owner (relay::MessageLedger).
// Relayed: an upstream accepted it (passthrough, or a queued message delivered). Bounced /
// Expired: a queued message left the queue with at least one recipient refused for good /
// not delivered in time. Being queued is not an outcome: see queue_accepted().
enum class MessageResult { Relayed, Rejected, Deferred, Failed, Bounced, Expired };
const char* to_string(MessageResult result);

class Metrics {
 public:
  // Creates every series for the chain up front (at zero), so rate() and alerts work
  // before the first event.
  Metrics(const std::vector<config::Endpoint>& chain, const std::string& version);

  // The [[route]] names message and queue series may carry, their series created at zero
  // (at start and after each reload; names of removed routes stay known).
  void add_routes(const std::vector<config::Route>& routes);
  // Creates at zero the series of endpoints not seen before (a reload's new chain).
  // Series are found by the endpoint's labels (name and port), never by its position in
  // one chain: a reload that reorders the chain keeps counting into the same series.
  void add_endpoints(const std::vector<config::Endpoint>& chain);
  // The outcome of the last configuration load (startup or reload), and when it was.
  void config_reload(bool success, double unix_seconds);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  // process_* (CPU, memory, descriptors, start time), read at each collection; the exposer
  // serves it next to registry().
  std::shared_ptr<prometheus::Collectable> process_collector() const { return process_; }
  std::string serialize() const;  // Prometheus text exposition format, both of the above

  void connect_attempt(const config::Endpoint& endpoint);
  void connect_failure(const config::Endpoint& endpoint, FailureReason reason);
  void connect_success(const config::Endpoint& endpoint, double seconds);
  void connect_cancelled(const config::Endpoint& endpoint);
  // A background probe (fail-back or health refresh) ended: counted by result (and a
  // failure by reason), not in the connect_* series (message traffic); sets upstream_up,
  // and on success the last success time, like a message's connect.
  void probe_result(const config::Endpoint& endpoint, std::optional<FailureReason> failure);
  // A ready endpoint failed inside a transaction (timeout, reset, 421, protocol): counted
  // by reason, and upstream_up drops to 0 like after a connect failure.
  void transaction_failure(const config::Endpoint& endpoint, FailureReason reason);
  void failover(const config::Endpoint& from, const config::Endpoint& to);
  void pool_idle(const config::Endpoint& endpoint, std::size_t idle);
  void pool_reuse(const config::Endpoint& endpoint);
  // `route` (every message and queue series carries it) is one of the names add_routes()
  // was given, else "default": the label's values come from the configuration only.
  void message(MessageResult result, std::string_view route = config::kDefaultRouteName);
  // Upstream limits (issue #18), by upstream (account) name: a throttling reply ("throttle"),
  // a quota reply ("quota") or max_consecutive_refusals in a row ("refusals") paused it;
  // and its gate now: paused or not, tokens left in its bucket, connections open.
  void upstream_throttled(const std::string& upstream, const char* kind);
  // `tokens`: nullopt for an upstream without max_message_rate (no series).
  void upstream_gate(const std::string& upstream, bool paused, std::optional<double> tokens,
                     std::size_t connections);
  void message_relayed(double seconds, std::uint64_t size);
  void session_opened();
  void session_closed();
  void auth_failure();  // a client's AUTH was refused (wrong user or password)
  void auth_busy();     // AUTH answered 454: too many password checks waiting
  // A From header was rewritten (stage "accept": [rewrite]; "upstream": an [[upstream]]
  // identity), and one that a DKIM-Signature covered, which no longer verifies.
  void from_rewritten(std::string_view stage);
  void dkim_signature_broken(std::string_view stage);
  // A new client was turned away: "max_sessions" or "per_address".
  void session_refused(const std::string& reason);
  void session_shed();  // an idle pre-MAIL session was closed to make room
  // The spool (queue).
  void queue_size(std::size_t queued, std::size_t deferred, std::size_t failed, std::uint64_t bytes,
                  double oldest_seconds);
  // result: "delivered", "deferred" or "refused".
  void delivery_attempt(const char* result, std::string_view route = config::kDefaultRouteName);
  // The spool stored a message durably (the client's 250).
  void queue_accepted(std::string_view route = config::kDefaultRouteName);
  void queue_delivered(double seconds_since_acknowledged);
  void spool_sync(double seconds);
  // reason: "max_messages", "max_bytes", "min_free_disk" or "write_error".
  void spool_refusal(const char* reason);

  // This process ran out of descriptors or memory: kind "connect" (opening an upstream
  // connection) or "accept" (taking a client's connection).
  void local_error(const std::string& kind);

 private:
  struct EndpointSeries {
    prometheus::Counter* attempts;
    std::map<FailureReason, prometheus::Counter*> failures;
    std::map<FailureReason, prometheus::Counter*> transaction_failures;
    prometheus::Histogram* duration;
    prometheus::Gauge* up;
    prometheus::Counter* cancelled;
    prometheus::Gauge* pool_idle;
    prometheus::Counter* pool_reuses;
    prometheus::Counter* probe_successes;
    std::map<FailureReason, prometheus::Counter*> probe_failures;
    prometheus::Gauge* last_success;  // Unix time
  };
  EndpointSeries& series(const config::Endpoint& endpoint);

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> process_;
  prometheus::Family<prometheus::Counter>* probes_;
  prometheus::Family<prometheus::Gauge>* last_success_;
  prometheus::Family<prometheus::Counter>* attempts_;
  prometheus::Family<prometheus::Counter>* failures_;
  prometheus::Family<prometheus::Counter>* transaction_failures_;
  prometheus::Family<prometheus::Histogram>* connect_duration_;
  prometheus::Family<prometheus::Gauge>* up_;
  prometheus::Family<prometheus::Counter>* cancelled_;
  prometheus::Family<prometheus::Gauge>* pool_idle_;
  prometheus::Family<prometheus::Counter>* pool_reuses_;
  prometheus::Family<prometheus::Counter>* failovers_;
  prometheus::Family<prometheus::Counter>* throttled_;
  prometheus::Family<prometheus::Gauge>* paused_;
  prometheus::Family<prometheus::Gauge>* tokens_;
  prometheus::Family<prometheus::Gauge>* connections_;
  prometheus::Family<prometheus::Counter>* messages_;
  prometheus::Histogram* relay_duration_;
  prometheus::Histogram* message_size_;
  prometheus::Gauge* sessions_active_;
  prometheus::Counter* auth_failures_;
  prometheus::Counter* auth_busy_;
  prometheus::Family<prometheus::Counter>* from_rewrites_;
  prometheus::Family<prometheus::Counter>* dkim_broken_;
  prometheus::Family<prometheus::Counter>* sessions_refused_;
  prometheus::Counter* sessions_shed_;
  prometheus::Family<prometheus::Counter>* local_errors_;
  const std::string& route_label(std::string_view route) const;
  void add_message_series(const std::string& route);
  std::set<std::string, std::less<>> known_routes_;
  // portrelay_messages_total by route, then by MessageResult (in kResults' order).
  std::map<std::string, std::array<prometheus::Counter*, 6>, std::less<>> message_counters_;
  std::map<std::string, prometheus::Gauge*> queue_messages_;
  prometheus::Gauge* queue_bytes_;
  prometheus::Gauge* queue_oldest_;
  prometheus::Family<prometheus::Counter>* delivery_attempts_;
  prometheus::Family<prometheus::Counter>* queue_accepted_;
  prometheus::Histogram* queue_delivery_duration_;
  prometheus::Histogram* spool_sync_duration_;
  prometheus::Family<prometheus::Counter>* spool_refusals_;
  prometheus::Gauge* reload_success_;
  prometheus::Gauge* reload_timestamp_;
  // By (name, port): the labels of the series.
  std::map<std::pair<std::string, std::uint16_t>, EndpointSeries> endpoints_;
  // Every loop ([server] workers) counts into one Metrics: the prometheus-cpp series are
  // thread-safe (atomic counters and gauges, Family::Add and Histogram::Observe under their
  // own locks), but the lookup tables here (endpoints_, known_routes_, message_counters_)
  // grow on the main loop at a reload while other loops read them. Readers hold this
  // shared, the reload's additions exclusively. Entries are never removed or changed once
  // added, so a series found stays valid after the lock is released.
  mutable std::shared_mutex tables_mutex_;
  // Gauges that each loop reports a part of (its pool's idle connections, its gates'
  // connections): the gauge is the sum of every loop's last report, by reporting thread.
  void set_loop_part(prometheus::Gauge* gauge, double value);
  std::mutex loop_parts_mutex_;
  std::map<prometheus::Gauge*, std::map<std::thread::id, double>> loop_parts_;
};

}  // namespace portrelay::metrics
