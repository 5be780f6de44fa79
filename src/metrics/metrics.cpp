#include "portrelay/metrics/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <array>
#include <chrono>

#include "process_collector.hpp"

namespace portrelay::metrics {

using prometheus::Histogram;

const char* to_string(MessageResult result) {
  switch (result) {
    case MessageResult::Relayed:
      return "relayed";
    case MessageResult::Rejected:
      return "rejected";
    case MessageResult::Deferred:
      return "deferred";
    case MessageResult::Failed:
      return "failed";
    case MessageResult::Bounced:
      return "bounced";
    case MessageResult::Expired:
      return "expired";
  }
  return "failed";
}

namespace {

constexpr std::array kResults = {MessageResult::Relayed,  MessageResult::Rejected,
                                 MessageResult::Deferred, MessageResult::Failed,
                                 MessageResult::Bounced,  MessageResult::Expired};

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

prometheus::Labels endpoint_labels(const config::Endpoint& endpoint) {
  return {{"upstream", endpoint.name}, {"port", std::to_string(endpoint.port)}};
}

}  // namespace

Metrics::Metrics(const std::vector<config::Endpoint>& chain, const std::string& version)
    : registry_(std::make_shared<prometheus::Registry>()),
      process_(std::make_shared<ProcessCollector>()) {
  auto& registry = *registry_;
  probes_ = &prometheus::BuildCounter()
                 .Name("portrelay_upstream_probes_total")
                 .Help(
                     "Background probes of upstream endpoints (start-up, periodic health "
                     "refresh, fail-back), by result, and failures by reason (as in "
                     "connect_failures_total). Not counted in the connect_* series.")
                 .Register(registry);
  last_success_ = &prometheus::BuildGauge()
                       .Name("portrelay_upstream_last_success_timestamp_seconds")
                       .Help(
                           "Unix time of the last successful connect or probe of the endpoint; "
                           "0 if none yet.")
                       .Register(registry);
  attempts_ = &prometheus::BuildCounter()
                   .Name("portrelay_upstream_connect_attempts_total")
                   .Help("Connection attempts to upstream endpoints.")
                   .Register(registry);
  failures_ = &prometheus::BuildCounter()
                   .Name("portrelay_upstream_connect_failures_total")
                   .Help("Failed connection attempts to upstream endpoints, by reason.")
                   .Register(registry);
  transaction_failures_ =
      &prometheus::BuildCounter()
           .Name("portrelay_upstream_transaction_failures_total")
           .Help(
               "Failures of a ready endpoint inside a transaction (timeout, reset or 421, "
               "protocol violation), by reason. Each also cools the endpoint down.")
           .Register(registry);
  connect_duration_ = &prometheus::BuildHistogram()
                           .Name("portrelay_upstream_connect_duration_seconds")
                           .Help(
                               "Time from the start of an attempt until the endpoint was ready "
                               "(TCP, TLS, greeting, EHLO, AUTH), successful attempts only.")
                           .Register(registry);
  up_ = &prometheus::BuildGauge()
             .Name("portrelay_upstream_up")
             .Help("1 if the last attempt on the endpoint succeeded, 0 if it failed.")
             .Register(registry);
  cancelled_ = &prometheus::BuildCounter()
                    .Name("portrelay_upstream_connect_cancelled_total")
                    .Help("Attempts cancelled because another endpoint won the race.")
                    .Register(registry);
  pool_idle_ = &prometheus::BuildGauge()
                    .Name("portrelay_upstream_pool_idle_connections")
                    .Help("Ready upstream connections waiting in the pool for reuse.")
                    .Register(registry);
  pool_reuses_ = &prometheus::BuildCounter()
                      .Name("portrelay_upstream_pool_reuses_total")
                      .Help("Messages sent over a pooled connection (no new connect).")
                      .Register(registry);
  failovers_ = &prometheus::BuildCounter()
                    .Name("portrelay_failovers_total")
                    .Help("Times a message moved from a failed endpoint to the next one.")
                    .Register(registry);
  throttled_ = &prometheus::BuildCounter()
                    .Name("portrelay_upstream_throttled_total")
                    .Help(
                        "Times an upstream was paused: kind throttle (a throttling reply), "
                        "quota (a quota reply) or refusals (max_consecutive_refusals in a row).")
                    .Register(registry);
  paused_ = &prometheus::BuildGauge()
                 .Name("portrelay_upstream_paused")
                 .Help("1 while the upstream is paused after a throttle, quota or refusals.")
                 .Register(registry);
  tokens_ = &prometheus::BuildGauge()
                 .Name("portrelay_upstream_rate_tokens")
                 .Help("Messages the upstream's max_message_rate bucket allows at once now.")
                 .Register(registry);
  connections_ = &prometheus::BuildGauge()
                      .Name("portrelay_upstream_connections")
                      .Help("Upstream connections open (probes and pooled ones included).")
                      .Register(registry);
  messages_ = &prometheus::BuildCounter()
                   .Name("portrelay_messages_total")
                   .Help(
                       "Messages by final outcome, each counted once: relayed (an upstream "
                       "accepted it, directly or from the queue), rejected (refused locally), "
                       "deferred (4xx to the client), failed (upstream 5xx to the client), "
                       "bounced and expired (left the queue undelivered for some recipient). "
                       "A queued message counts when it leaves the queue.")
                   .Register(registry);
  relay_duration_ = &prometheus::BuildHistogram()
                         .Name("portrelay_relay_duration_seconds")
                         .Help("Time from end of DATA until the upstream accepted the message.")
                         .Register(registry)
                         .Add({}, Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                              0.5, 1, 2.5, 5, 10, 30, 60});
  message_size_ = &prometheus::BuildHistogram()
                       .Name("portrelay_message_size_bytes")
                       .Help("Size of relayed messages.")
                       .Register(registry)
                       .Add({}, Histogram::BucketBoundaries{1024, 4096, 16384, 65536, 262144,
                                                            1048576, 4194304, 16777216, 67108864});
  sessions_active_ = &prometheus::BuildGauge()
                          .Name("portrelay_client_sessions_active")
                          .Help("Client SMTP sessions currently open.")
                          .Register(registry)
                          .Add({});
  auth_failures_ = &prometheus::BuildCounter()
                        .Name("portrelay_auth_failures_total")
                        .Help(
                            "Client AUTH attempts refused with 535 (unknown user or wrong "
                            "password).")
                        .Register(registry)
                        .Add({});
  auth_busy_ = &prometheus::BuildCounter()
                    .Name("portrelay_auth_busy_total")
                    .Help(
                        "Client AUTH attempts answered 454 because too many password checks "
                        "were already waiting (AUTH flood).")
                    .Register(registry)
                    .Add({});
  from_rewrites_ = &prometheus::BuildCounter()
                        .Name("portrelay_from_rewrites_total")
                        .Help(
                            "From headers given a verified identity, by stage (accept: "
                            "[rewrite]; upstream: an [[upstream]] identity).")
                        .Register(registry);
  dkim_broken_ = &prometheus::BuildCounter()
                      .Name("portrelay_dkim_signatures_broken_total")
                      .Help(
                          "Rewritten From headers that an existing DKIM-Signature covered "
                          "(its h= lists From): that signature no longer verifies.")
                      .Register(registry);
  for (const char* stage : {"accept", "upstream"}) {
    from_rewrites_->Add({{"stage", stage}});
    dkim_broken_->Add({{"stage", stage}});
  }
  sessions_refused_ = &prometheus::BuildCounter()
                           .Name("portrelay_client_sessions_refused_total")
                           .Help(
                               "New clients turned away with 421 4.7.0, by reason: "
                               "max_sessions, per_address.")
                           .Register(registry);
  for (const char* reason : {"max_sessions", "per_address"})
    sessions_refused_->Add({{"reason", reason}});
  sessions_shed_ = &prometheus::BuildCounter()
                        .Name("portrelay_client_sessions_shed_total")
                        .Help(
                            "Idle sessions that had not sent MAIL or authenticated, closed "
                            "with 421 4.7.0 to make room for a new client.")
                        .Register(registry)
                        .Add({});
  local_errors_ = &prometheus::BuildCounter()
                       .Name("portrelay_local_errors_total")
                       .Help(
                           "Operations that failed because this process ran out of file "
                           "descriptors or memory, by kind (connect, accept).")
                       .Register(registry);
  for (const char* kind : {"connect", "accept"}) local_errors_->Add({{"kind", kind}});
  prometheus::BuildGauge()
      .Name("portrelay_build_info")
      .Help("Build information; the value is always 1.")
      .Register(registry)
      .Add({{"version", version}})
      .Set(1);
  known_routes_.insert(std::string(config::kDefaultRouteName));
  add_message_series(std::string(config::kDefaultRouteName));

  auto& queue_messages = prometheus::BuildGauge()
                             .Name("portrelay_queue_messages")
                             .Help(
                                 "Messages in the spool: queued (not tried yet), deferred (tried, "
                                 "waiting for a retry), failed (kept in failed/, not bounced).")
                             .Register(registry);
  for (const char* state : {"queued", "deferred", "failed"})
    queue_messages_[state] = &queue_messages.Add({{"state", state}});
  queue_bytes_ = &prometheus::BuildGauge()
                      .Name("portrelay_queue_bytes")
                      .Help("Octets of queued and deferred messages in the spool.")
                      .Register(registry)
                      .Add({});
  queue_oldest_ = &prometheus::BuildGauge()
                       .Name("portrelay_queue_oldest_seconds")
                       .Help("Age of the oldest queued or deferred message (0 when empty).")
                       .Register(registry)
                       .Add({});
  delivery_attempts_ = &prometheus::BuildCounter()
                            .Name("portrelay_delivery_attempts_total")
                            .Help(
                                "Background delivery attempts of queued messages: delivered "
                                "(every pending recipient accepted), deferred (some left for a "
                                "retry), refused (some refused for good).")
                            .Register(registry);
  for (const char* result : {"delivered", "deferred", "refused"})
    delivery_attempts_->Add(
        {{"result", result}, {"route", std::string(config::kDefaultRouteName)}});
  queue_accepted_ = &prometheus::BuildCounter()
                         .Name("portrelay_queue_accepted_total")
                         .Help(
                             "Messages the spool stored durably before the client's 250 "
                             "(\"queued as\"); their outcome counts later, in "
                             "portrelay_messages_total.")
                         .Register(registry);
  queue_accepted_->Add({{"route", std::string(config::kDefaultRouteName)}});
  queue_delivery_duration_ =
      &prometheus::BuildHistogram()
           .Name("portrelay_queue_delivery_seconds")
           .Help("Time from the client's 250 (queued) until an upstream accepted the message.")
           .Register(registry)
           .Add({}, Histogram::BucketBoundaries{0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5,
                                                10, 30, 60, 300, 1800, 3600, 21600, 86400});
  spool_sync_duration_ =
      &prometheus::BuildHistogram()
           .Name("portrelay_spool_sync_seconds")
           .Help(
               "Duration of each sync phase of a spool round: its new files' data, then each "
               "changed directory.")
           .Register(registry)
           .Add({}, Histogram::BucketBoundaries{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
                                                0.25, 0.5, 1, 5});
  spool_refusals_ = &prometheus::BuildCounter()
                         .Name("portrelay_spool_refusals_total")
                         .Help(
                             "Messages the spool could not take (the client got 452 or 451): "
                             "max_messages, max_bytes, min_free_disk, write_error.")
                         .Register(registry);
  for (const char* reason : {"max_messages", "max_bytes", "min_free_disk", "write_error"})
    spool_refusals_->Add({{"reason", reason}});

  reload_success_ = &prometheus::BuildGauge()
                         .Name("portrelay_config_last_reload_success")
                         .Help(
                             "1 if the last configuration load (startup or reload) was applied, "
                             "0 if it was refused and the running configuration kept.")
                         .Register(registry)
                         .Add({});
  reload_timestamp_ = &prometheus::BuildGauge()
                           .Name("portrelay_config_last_reload_timestamp_seconds")
                           .Help(
                               "Unix time of the last configuration load (startup or reload), "
                               "successful or not.")
                           .Register(registry)
                           .Add({});
  add_endpoints(chain);
}

void Metrics::add_endpoints(const std::vector<config::Endpoint>& chain) {
  std::unique_lock lock(tables_mutex_);
  for (const auto& endpoint : chain) {
    auto key = std::make_pair(endpoint.name, endpoint.port);
    if (endpoints_.count(key)) continue;
    EndpointSeries entry;
    auto labels = endpoint_labels(endpoint);
    entry.attempts = &attempts_->Add(labels);
    for (auto reason : kAllFailureReasons) {
      auto with_reason = labels;
      with_reason["reason"] = portrelay::to_string(reason);
      entry.failures[reason] = &failures_->Add(with_reason);
    }
    for (auto reason : kTransactionFailureReasons) {
      auto with_reason = labels;
      with_reason["reason"] = portrelay::to_string(reason);
      entry.transaction_failures[reason] = &transaction_failures_->Add(with_reason);
    }
    entry.duration = &connect_duration_->Add(
        labels, Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                            5, 10, 30});
    entry.up = &up_->Add(labels);
    for (const char* kind : {"throttle", "quota", "refusals"})
      throttled_->Add({{"upstream", endpoint.name}, {"kind", kind}});
    paused_->Add({{"upstream", endpoint.name}});
    connections_->Add({{"upstream", endpoint.name}});
    entry.cancelled = &cancelled_->Add(labels);
    entry.pool_idle = &pool_idle_->Add(labels);
    entry.pool_reuses = &pool_reuses_->Add(labels);
    auto with_result = labels;
    with_result["result"] = "success";
    entry.probe_successes = &probes_->Add(with_result);
    with_result["result"] = "failure";
    for (auto reason : kAllFailureReasons) {
      with_result["reason"] = portrelay::to_string(reason);
      entry.probe_failures[reason] = &probes_->Add(with_result);
    }
    entry.last_success = &last_success_->Add(labels);
    endpoints_.emplace(key, entry);
  }
}

void Metrics::config_reload(bool success, double unix_seconds) {
  reload_success_->Set(success ? 1 : 0);
  reload_timestamp_->Set(unix_seconds);
}

Metrics::EndpointSeries& Metrics::series(const config::Endpoint& endpoint) {
  std::shared_lock lock(tables_mutex_);
  return endpoints_.at({endpoint.name, endpoint.port});
}

std::string Metrics::serialize() const {
  auto families = registry_->Collect();
  auto process = process_->Collect();
  families.insert(families.end(), process.begin(), process.end());
  return prometheus::TextSerializer().Serialize(families);
}

void Metrics::connect_attempt(const config::Endpoint& endpoint) {
  series(endpoint).attempts->Increment();
}

void Metrics::connect_failure(const config::Endpoint& endpoint, FailureReason reason) {
  auto& entry = series(endpoint);
  entry.failures.at(reason)->Increment();
  entry.up->Set(0);
}

void Metrics::transaction_failure(const config::Endpoint& endpoint, FailureReason reason) {
  auto& entry = series(endpoint);
  entry.transaction_failures.at(reason)->Increment();
  entry.up->Set(0);
}

void Metrics::connect_success(const config::Endpoint& endpoint, double seconds) {
  auto& entry = series(endpoint);
  entry.duration->Observe(seconds);
  entry.up->Set(1);
  entry.last_success->Set(unix_now());
}

void Metrics::probe_result(const config::Endpoint& endpoint, std::optional<FailureReason> failure) {
  auto& entry = series(endpoint);
  if (failure) {
    entry.probe_failures.at(*failure)->Increment();
    entry.up->Set(0);
    return;
  }
  entry.probe_successes->Increment();
  entry.up->Set(1);
  entry.last_success->Set(unix_now());
}

void Metrics::connect_cancelled(const config::Endpoint& endpoint) {
  series(endpoint).cancelled->Increment();
}

void Metrics::set_loop_part(prometheus::Gauge* gauge, double value) {
  std::lock_guard lock(loop_parts_mutex_);
  auto& parts = loop_parts_[gauge];
  parts[std::this_thread::get_id()] = value;
  double sum = 0;
  for (const auto& [thread, part] : parts) sum += part;
  gauge->Set(sum);
}

void Metrics::pool_idle(const config::Endpoint& endpoint, std::size_t idle) {
  set_loop_part(series(endpoint).pool_idle, static_cast<double>(idle));
}

void Metrics::pool_reuse(const config::Endpoint& endpoint) {
  series(endpoint).pool_reuses->Increment();
}

void Metrics::upstream_throttled(const std::string& upstream, const char* kind) {
  throttled_->Add({{"upstream", upstream}, {"kind", kind}}).Increment();
}

void Metrics::upstream_gate(const std::string& upstream, bool paused, std::optional<double> tokens,
                            std::size_t connections) {
  paused_->Add({{"upstream", upstream}}).Set(paused ? 1 : 0);
  if (tokens) tokens_->Add({{"upstream", upstream}}).Set(*tokens);
  set_loop_part(&connections_->Add({{"upstream", upstream}}), static_cast<double>(connections));
}

void Metrics::failover(const config::Endpoint& from, const config::Endpoint& to) {
  failovers_->Add({{"from", from.label()}, {"to", to.label()}}).Increment();
}

const std::string& Metrics::route_label(std::string_view route) const {
  static const std::string kDefault(config::kDefaultRouteName);
  std::shared_lock lock(tables_mutex_);
  const auto found = known_routes_.find(route);
  return found == known_routes_.end() ? kDefault : *found;
}

void Metrics::add_routes(const std::vector<config::Route>& routes) {
  std::unique_lock lock(tables_mutex_);
  for (const config::Route& route : routes) {
    if (!known_routes_.insert(route.name).second) continue;
    add_message_series(route.name);
    for (const char* result : {"delivered", "deferred", "refused"})
      delivery_attempts_->Add({{"result", result}, {"route", route.name}});
    queue_accepted_->Add({{"route", route.name}});
  }
}

void Metrics::add_message_series(const std::string& route) {
  static_assert(kResults.size() == std::tuple_size_v<decltype(message_counters_)::mapped_type>);
  auto& counters = message_counters_[route];
  for (std::size_t i = 0; i < kResults.size(); ++i)
    counters[i] = &messages_->Add({{"result", to_string(kResults[i])}, {"route", route}});
}

// Counted on every message: the series are looked up once, when the route became known.
void Metrics::message(MessageResult result, std::string_view route) {
  std::shared_lock lock(tables_mutex_);
  auto found = message_counters_.find(route);
  if (found == message_counters_.end()) found = message_counters_.find(config::kDefaultRouteName);
  for (std::size_t i = 0; i < kResults.size(); ++i)
    if (kResults[i] == result) return found->second[i]->Increment();
}

void Metrics::message_relayed(double seconds, std::uint64_t size) {
  relay_duration_->Observe(seconds);
  message_size_->Observe(static_cast<double>(size));
}

void Metrics::session_opened() { sessions_active_->Increment(); }
void Metrics::session_closed() { sessions_active_->Decrement(); }
void Metrics::auth_failure() { auth_failures_->Increment(); }
void Metrics::auth_busy() { auth_busy_->Increment(); }
void Metrics::from_rewritten(std::string_view stage) {
  from_rewrites_->Add({{"stage", std::string(stage)}}).Increment();
}
void Metrics::dkim_signature_broken(std::string_view stage) {
  dkim_broken_->Add({{"stage", std::string(stage)}}).Increment();
}
void Metrics::session_refused(const std::string& reason) {
  sessions_refused_->Add({{"reason", reason}}).Increment();
}
void Metrics::session_shed() { sessions_shed_->Increment(); }

void Metrics::local_error(const std::string& kind) {
  local_errors_->Add({{"kind", kind}}).Increment();
}

void Metrics::queue_size(std::size_t queued, std::size_t deferred, std::size_t failed,
                         std::uint64_t bytes, double oldest_seconds) {
  queue_messages_.at("queued")->Set(static_cast<double>(queued));
  queue_messages_.at("deferred")->Set(static_cast<double>(deferred));
  queue_messages_.at("failed")->Set(static_cast<double>(failed));
  queue_bytes_->Set(static_cast<double>(bytes));
  queue_oldest_->Set(oldest_seconds);
}

void Metrics::delivery_attempt(const char* result, std::string_view route) {
  delivery_attempts_->Add({{"result", result}, {"route", route_label(route)}}).Increment();
}

void Metrics::queue_accepted(std::string_view route) {
  queue_accepted_->Add({{"route", route_label(route)}}).Increment();
}

void Metrics::queue_delivered(double seconds) { queue_delivery_duration_->Observe(seconds); }

void Metrics::spool_sync(double seconds) { spool_sync_duration_->Observe(seconds); }

void Metrics::spool_refusal(const char* reason) {
  spool_refusals_->Add({{"reason", reason}}).Increment();
}

}  // namespace portrelay::metrics
