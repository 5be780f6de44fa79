// spool::Spool is glue: each concern's decisions live in a pure model, and this file carries
// them out with the loop, the committer and the deliveries. By concern, in this order:
//   lifecycle      start, set_upstream, reconfigure, shutdown
//   intake         admission (admission.hpp), accept, the maildrop
//   scheduling     pump, tick, expiry, recovery flushes (delivery_scheduler.hpp over
//                  queue_index.hpp)
//   delivery       one spool::Delivery per message in flight, and its result
//   settlement     state rewrites, leaving the queue, bounces (delivery_plan.hpp,
//                  dsn_inputs.hpp)
//   operator       retry, remove, bounce, list
//   metrics        the queue gauges
#include "portrelay/spool/spool.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "portrelay/base/ascii.hpp"
#include "portrelay/base/log.hpp"
#include "portrelay/relay/message_ledger.hpp"
#include "portrelay/smtp/header_filter.hpp"
#include "portrelay/spool/bounce_message.hpp"
#include "portrelay/spool/dsn_inputs.hpp"

namespace portrelay::spool {
namespace {

constexpr std::chrono::milliseconds kTick{1000};
constexpr std::uint64_t kExpiryScanTicks = 30;  // expiry and failed/ clean-up, every 30 s
constexpr std::size_t kHeaderReadLimit = 64 * 1024;

// MAIL parameters that describe the content and must reach the upstream unchanged.
std::vector<std::string> carried_parameters(const smtp::PathArgument& sender) {
  std::vector<std::string> carried;
  for (const auto& parameter : sender.parameters) {
    if (parameter.keyword == "BODY" && !parameter.value.empty())
      carried.push_back("BODY=" + parameter.value);
    else if (parameter.keyword == "SMTPUTF8")
      carried.push_back("SMTPUTF8");
  }
  return carried;
}

std::string shown_sender(const std::string& sender) { return sender.empty() ? "<>" : sender; }

// The original's header section, for the bounce (never the whole body).
std::string read_headers(Env& env, int queue_fd, const std::string& id,
                         const RecordLayout& layout) {
  std::string text;
  auto fd = open_spool_file(env, queue_fd, id, O_RDONLY);
  if (!fd) return text;
  text.resize(
      static_cast<std::size_t>(std::min<std::uint64_t>(layout.body_size, kHeaderReadLimit)));
  auto got = env.read_at(*fd, text.data(), text.size(), layout.body_offset);
  (void)env.close(*fd);
  text.resize(got ? *got : 0);
  return header_section(text);
}

}  // namespace

// ---- lifecycle ------------------------------------------------------------------------

Spool::Spool(net::Loop& loop, config::SpoolConfig config, std::string hostname,
             metrics::Metrics& metrics, Clock clock)
    : loop_(loop),
      config_(std::move(config)),
      hostname_(std::move(hostname)),
      metrics_(metrics),
      clock_(std::move(clock)),
      scheduler_(index_, clock_, scheduler_limits()),
      tick_timer_(loop.uv()),
      limit_timer_(loop.uv()),
      grace_timer_(loop.uv()) {}

Spool::~Spool() {
  // Without shutdown() (a start-up that failed half way): completions that run while the
  // committer drains must not start anything.
  stopping_ = true;
  no_new_deliveries_ = true;
  for (auto& [id, delivery] : deliveries_) delivery->abandon();
  deliveries_.clear();
  if (committer_) committer_->stop();
}

AdmissionLimits Spool::admission_limits() const {
  return AdmissionLimits{config_.max_messages, config_.max_bytes, config_.min_free_disk};
}

DeliveryScheduler::Limits Spool::scheduler_limits() const {
  return DeliveryScheduler::Limits{
      config_.max_deliveries,
      RetryPolicy{config_.retry_min, config_.retry_max, config_.max_lifetime},
      config_.failed_lifetime};
}

std::string Spool::next_id() {
  // Time first, so a directory listing is oldest first; then a per-process sequence from
  // a random start. Uniqueness is enforced on disk (the rename never replaces a file).
  // 11 hex digits of milliseconds (enough until the year 2527), 5 of the sequence.
  std::string id;
  id.reserve(16);
  ascii::append_hex(id, static_cast<std::uint64_t>(clock_.now_ms()), 11, true);
  ascii::append_hex(id, id_sequence_++ & 0xFFFFF, 5, true);
  return id;
}

void Spool::start() {
  directory_ = std::make_unique<SpoolDirectory>(config_.dir);
  // `portrelay queue` holds the lock for a moment while it changes files offline: wait a
  // little before concluding that another daemon owns the spool.
  bool locked = directory_->try_lock();
  for (int i = 0; i < 20 && !locked; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    locked = directory_->try_lock();
  }
  if (!locked)
    throw std::runtime_error("spool " + config_.dir + " is in use by another portrelay process (" +
                             config_.dir + "/lock is held)");
  id_sequence_ = clock_.random();
  RecoveryReport report = directory_->recover();
  for (const auto& corrupt : report.corrupt)
    log::error("spool_corrupt_file", {{"file", corrupt}, {"moved_to", config_.dir + "/corrupt"}});
  for (const auto& unreadable : report.unreadable)
    log::error("spool_unreadable_file", {{"file", unreadable}, {"kept", "for the next start"}});
  for (auto& stored : report.messages)
    index_.add(QueueEntry{std::move(stored.layout), std::move(stored.state)});
  for (auto& stored : report.failed)
    index_.add(QueueEntry{std::move(stored.layout), std::move(stored.state), Stage::Failed,
                          stored.modified_ms});
  committer_ = std::make_unique<Committer>(
      loop_, *directory_, [this](double seconds) { metrics_.spool_sync(seconds); });
  log::info("spool_ready", {{"dir", config_.dir},
                            {"queued", std::to_string(index_.size() - report.failed.size())},
                            {"failed", std::to_string(report.failed.size())},
                            {"removed_partial", std::to_string(report.removed_partial)},
                            {"corrupt", std::to_string(report.corrupt.size())}});
  publish_metrics();
  try {
    maildrop_ = std::make_unique<Maildrop>(config_.dir);
  } catch (const std::exception& error) {
    log::error("maildrop_unusable", {{"detail", error.what()}});
  }
  pick_up_dropped();
  tick_timer_.start(kTick, [this]() { tick(); });
  // A message with nothing pending (settled before a crash, bounced by the operator while
  // no daemon ran, or whose bounce could not be queued) is finished by pump(), not tried.
}

void Spool::set_upstream(std::shared_ptr<relay::UpstreamSelector> selector) {
  if (selector_) selector_->set_on_endpoint_up(nullptr);
  if (selector_) selector_->set_on_capacity(nullptr);
  selector_ = std::move(selector);
  selector_->set_on_endpoint_up([this](std::size_t) { on_endpoint_up(); });
  selector_->set_on_capacity([this]() { pump(); });
  loop_.post([this]() { pump(); });
}

void Spool::reconfigure(const config::SpoolConfig& config) {
  const std::string dir = config_.dir;
  config_ = config;
  config_.dir = dir;
  scheduler_.set_limits(scheduler_limits());
}

void Spool::shutdown(config::Duration grace, std::function<void()> done) {
  stopping_ = true;
  tick_timer_.stop();
  limit_timer_.stop();
  if (selector_) selector_->set_on_endpoint_up(nullptr);
  if (selector_) selector_->set_on_capacity(nullptr);
  on_stopped_ = std::move(done);
  if (deliveries_.empty())
    loop_.post([this]() { finish_shutdown(); });
  else
    grace_timer_.start(grace, [this]() { finish_shutdown(); });
}

void Spool::finish_shutdown() {
  if (!on_stopped_) return;
  grace_timer_.stop();
  // Abandoned attempts leave their messages queued exactly as they were.
  if (!deliveries_.empty())
    log::info("deliveries_abandoned", {{"count", std::to_string(deliveries_.size())}});
  for (auto& [id, delivery] : deliveries_) {
    delivery->abandon();
    loop_.defer_delete(std::move(delivery));
  }
  deliveries_.clear();
  if (committer_) committer_->stop();
  auto stopped = std::move(on_stopped_);
  on_stopped_ = nullptr;
  stopped();
}

// ---- intake ---------------------------------------------------------------------------

// The file system's free space, asked at most every 100 ms: admission runs at MAIL and at
// the end of data of every message, and a statfs each time was two calls per message. What
// it misses in between (our own writes, a few MB at most at full speed; another program's)
// is far below any sensible min_free_disk, and a write that finds the disk full is still
// refused with 452.
std::optional<std::uint64_t> Spool::free_disk() const {
  const auto now = std::chrono::steady_clock::now();
  if (!free_disk_sampled_ || now - *free_disk_sampled_ >= std::chrono::milliseconds(100)) {
    free_disk_ = directory_->free_bytes();
    free_disk_sampled_ = now;
  }
  return free_disk_;
}

AdmissionVerdict Spool::admission(std::uint64_t size) const {
  SpoolLoad load;
  load.messages = index_.size() + storing_;
  load.bytes = index_.counts().queued_bytes + storing_bytes_;
  load.free_disk = free_disk();
  load.stopping = stopping_;
  return judge_admission(load, admission_limits(), size);
}

smtp::Reply Spool::refuse(AdmissionVerdict verdict, std::uint64_t size) {
  if (const char* reason = refusal_reason(verdict)) {
    metrics_.spool_refusal(reason);
    log::warn("spool_refused", {{"reason", reason}, {"size", std::to_string(size)}});
  }
  return refusal_reply(verdict, admission_limits());
}

std::optional<smtp::Reply> Spool::admit(std::uint64_t size) {
  const AdmissionVerdict verdict = admission(size);
  if (verdict == AdmissionVerdict::Admitted) return std::nullopt;
  return refuse(verdict, size);
}

void Spool::accept(const smtp::PathArgument& sender, const std::vector<std::string>& recipients,
                   std::unique_ptr<relay::MessageBody> body, const std::string& origin,
                   Accepted done, std::optional<std::string> route) {
  QueueEntry entry;
  Envelope& envelope = entry.layout.envelope;
  envelope.id = next_id();
  envelope.arrival_ms = clock_.now_ms();
  envelope.sender = sender.address;
  // The null path is never rewritten, so a bounce never gets an original sender.
  if (!sender.original_address.empty() && sender.original_address != sender.address &&
      !sender.address.empty())
    envelope.original_sender = sender.original_address;
  envelope.parameters = carried_parameters(sender);
  envelope.recipients = recipients;
  envelope.route = route ? *route : route_for_sender(sender.address);
  if (envelope.route == config::kDefaultRouteName) envelope.route.clear();
  const std::uint64_t body_size = body->size();
  std::string header = encode_header(envelope, body_size);
  entry.layout.body_offset = header.size();
  entry.layout.body_size = body_size;
  entry.state.recipients.resize(recipients.size());
  // Due from its arrival: oldest first among new and retried messages alike (0 would put
  // every new message before every retry and starve those under sustained load).
  entry.state.next_attempt_ms = envelope.arrival_ms;
  const std::uint64_t bytes = entry.layout.file_size();
  ++storing_;
  storing_bytes_ += bytes;
  const std::string id = envelope.id;
  committer_->store(
      id, std::move(header), std::move(body),
      [this, entry = std::move(entry), bytes, origin, original = sender.original_address,
       done = std::move(done)](Status stored) mutable {
        --storing_;
        storing_bytes_ -= bytes;
        const std::string id = entry.id();
        if (!stored) {
          metrics_.spool_refusal("write_error");
          log::error("spool_write_failed", {{"queue_id", id}, {"detail", stored.error().message}});
          done(stored.error());
          return;
        }
        const auto& envelope = entry.layout.envelope;
        log::info("queued",
                  {{"queue_id", id},
                   {"origin", origin},
                   {"from", shown_sender(envelope.sender)},
                   {"original_from", original.empty() ? shown_sender(envelope.sender) : original},
                   {"recipients", std::to_string(envelope.recipients.size())},
                   {"route", envelope.route.empty() ? std::string(config::kDefaultRouteName)
                                                    : envelope.route},
                   {"size", std::to_string(entry.layout.body_size)}});
        index_.add(std::move(entry));
        publish_metrics();
        done(id);
        pump();
      });
}

std::string Spool::route_for_sender(std::string_view sender) const {
  if (!selector_) return std::string(config::kDefaultRouteName);
  return selector_->route_for_sender(sender).name;
}

void Spool::rewrite_dropped(DroppedMessage& dropped, const std::string& name,
                            smtp::PathArgument& sender) {
  sender.address = identity_->accepted_sender(dropped.sender);
  if (sender.address != dropped.sender) sender.original_address = dropped.sender;
  smtp::HeaderFilter filter(identity_->acceptance_plan(dropped.sender, false),
                            dropped.content.size());
  std::string content;
  content.append(filter.feed(dropped.content, content));
  filter.finish(content);
  dropped.content = std::move(content);
  const auto& result = filter.result();
  if (!result || !result->from_replaced) return;
  metrics_.from_rewritten("accept");
  log::info("from_rewritten", {{"file", name}, {"original_from", result->original_from}});
  if (result->dkim_signature_broken) {
    metrics_.dkim_signature_broken("accept");
    log::warn("dkim_signature_broken",
              {{"file", name},
               {"original_from", result->original_from},
               {"detail", "From is signed by a DKIM-Signature (h=) and was rewritten"}});
  }
}

void Spool::pick_up_dropped() {
  // A few per tick: a flood of drops cannot starve the loop, and each waits for room.
  constexpr std::size_t kPerTick = 64;
  if (!maildrop_ || stopping_ || !committer_) return;
  for (const std::string& name : maildrop_->waiting(kPerTick + picking_up_.size())) {
    if (picking_up_.count(name) != 0) continue;
    const std::uint64_t envelope_room = 64 * 1024 + maildrop_limits_.max_recipients * 300;
    auto file = maildrop_->read(name, maildrop_limits_.max_content + envelope_room);
    if (!file) {
      log::error("maildrop_rejected", {{"file", name}, {"detail", file.error().message}});
      maildrop_->set_aside(name);
      continue;
    }
    const std::string uid = std::to_string(file->uid);
    auto dropped = parse_dropped(file->data, maildrop_limits_);
    if (!dropped) {
      log::error("maildrop_rejected",
                 {{"file", name}, {"uid", uid}, {"detail", dropped.error().message}});
      maildrop_->set_aside(name);
      continue;
    }
    // The envelope passes what an SMTP client's would (allowed_senders, require_route,
    // aliases): `sendmail` must not be a way around the policy.
    std::vector<std::string> recipients;
    if (envelope_policy_) {
      const std::string accepted =
          identity_ ? identity_->accepted_sender(dropped->sender) : dropped->sender;
      const bool replaced = identity_ && identity_->replaces_sender(dropped->sender);
      if (auto refusal =
              envelope_policy_->check_sender(dropped->sender, accepted, replaced, nullptr)) {
        log::error("maildrop_rejected",
                   {{"file", name}, {"uid", uid}, {"detail", refusal->summary()}});
        maildrop_->set_aside(name);
        continue;
      }
      for (const std::string& recipient : dropped->recipients) {
        auto mapped = envelope_policy_->map_recipient(recipient);
        if (mapped.refusal)
          log::warn("maildrop_recipient_refused", {{"file", name},
                                                   {"uid", uid},
                                                   {"to", recipient},
                                                   {"reply", mapped.refusal->summary()}});
        for (std::string& address : mapped.addresses)
          if (std::find(recipients.begin(), recipients.end(), address) == recipients.end())
            recipients.push_back(std::move(address));
      }
      if (recipients.empty()) {
        log::error("maildrop_rejected",
                   {{"file", name}, {"uid", uid}, {"detail", "no recipient left after [aliases]"}});
        maildrop_->set_aside(name);
        continue;
      }
    } else {
      recipients = dropped->recipients;
    }
    if (admit(dropped->content.size())) return;  // counted and logged; next tick
    smtp::PathArgument sender;
    sender.address = dropped->sender;
    if (identity_) rewrite_dropped(*dropped, name, sender);
    auto body = std::make_unique<relay::MessageBody>();
    if (!body->append(dropped->content)) {
      log::error("maildrop_rejected", {{"file", name}, {"uid", uid}, {"detail", body->error()}});
      return;  // local trouble (temporary file): the file stays for the next tick
    }
    if (dropped->eight_bit) sender.parameters.push_back({"BODY", "8BITMIME"});
    picking_up_.insert(name);
    accept(sender, recipients, std::move(body), "maildrop:uid=" + uid,
           [this, name, uid](Result<std::string> id) {
             picking_up_.erase(name);
             if (!id) return;  // spool_write_failed is logged; the file stays for later
             // Durable in queue/ now. A crash before this removal queues it again at the
             // next start: a duplicate, never a loss.
             if (maildrop_) maildrop_->remove(name);
             log::info("maildrop_picked_up", {{"file", name}, {"uid", uid}, {"queue_id", *id}});
           });
  }
}

// ---- scheduling -----------------------------------------------------------------------

void Spool::pump() {
  if (stopping_ || no_new_deliveries_ || !selector_ || !committer_) return;
  const auto all_cooling_down = [this]() { return selector_->all_cooling_down(); };
  const auto limit_wait = [this]() -> std::optional<std::int64_t> {
    const auto at = selector_->message_wait();
    if (!at) return std::nullopt;
    if (*at == relay::UpstreamGate::kWhenConnectionFrees) return -1;
    const auto wait =
        std::chrono::ceil<std::chrono::milliseconds>(*at - std::chrono::steady_clock::now());
    return std::max<std::int64_t>(1, wait.count());
  };
  for (;;) {
    const DeliveryScheduler::Next next =
        scheduler_.next(deliveries_.size(), all_cooling_down, limit_wait);
    switch (next.kind) {
      case DeliveryScheduler::Next::Kind::Nothing:
        return;
      case DeliveryScheduler::Next::Kind::HoldForLimits:
        // No polling: a timer for the exact time an upstream's limit allows a message, or
        // the selector's on_capacity when a connection closes (wait_ms -1).
        if (next.wait_ms >= 0)
          limit_timer_.start(std::chrono::milliseconds(next.wait_ms), [this]() { pump(); });
        return;
      case DeliveryScheduler::Next::Kind::HoldForChain:
        // Cool-downs are respected: while every endpoint is known to be down, nothing is
        // tried; recovery probes find the first one back and on_endpoint_up() resumes.
        selector_->set_recovery_probing(true);
        return;
      case DeliveryScheduler::Next::Kind::Finish:
        finish_settled(next.id);
        break;
      case DeliveryScheduler::Next::Kind::Deliver:
        start_delivery(next.id);
        break;
    }
  }
}

void Spool::tick() {
  ++ticks_;
  pick_up_dropped();
  if (ticks_ % kExpiryScanTicks == 0) expire(scheduler_.expiry_scan());
  // Probe the chain early while the queue is held up by it: the first message due waited
  // for the chain last time, or nothing can be tried now because every endpoint cools down.
  if (selector_)
    selector_->set_recovery_probing(
        scheduler_.held_up([this]() { return selector_->all_cooling_down(); }));
  publish_metrics();
  pump();
  if (!stopping_) tick_timer_.start(kTick, [this]() { tick(); });
}

void Spool::expire(const DeliveryScheduler::Expiry& expiry) {
  for (const auto& id : expiry.forgotten) {
    log::info("failed_expired", {{"queue_id", id}});
    leave_queue(id, false);
  }
  for (const auto& id : expiry.expired) {
    const QueueEntry* entry = index_.find(id);
    if (!entry) continue;
    if (!entry->has_pending()) {  // settled already (its bounce failed to store)
      finish_settled(id);
      continue;
    }
    Settlement settlement = bounce_pending(
        entry->state, "not delivered before max_lifetime: " + entry->state.last_error);
    settlement.expired = true;
    for (std::size_t i : settlement.bounced)
      log::warn("expired", {{"queue_id", id}, {"to", entry->layout.envelope.recipients[i]}});
    settled(id, std::move(settlement));
  }
}

void Spool::on_endpoint_up() {
  // Everything that waited for the chain is due now, oldest first.
  const std::size_t flushed = scheduler_.endpoint_up();
  if (flushed > 0) log::info("queue_flush", {{"messages", std::to_string(flushed)}});
  pump();
}

// ---- delivery -------------------------------------------------------------------------

void Spool::start_delivery(const std::string& id) {
  const QueueEntry& entry = *index_.find(id);
  auto delivery = std::make_unique<Delivery>(
      loop_, selector_, metrics_, directory_->env(), directory_->queue_fd(), id, entry.layout,
      entry.state, [this, id](AttemptResult result) { attempt_done(id, std::move(result)); });
  Delivery* started = delivery.get();
  deliveries_[id] = std::move(delivery);
  started->start();
}

void Spool::abandon_delivery(const std::string& id) {
  auto delivery = deliveries_.find(id);
  if (delivery == deliveries_.end()) return;
  delivery->second->abandon();
  loop_.defer_delete(std::move(delivery->second));
  deliveries_.erase(delivery);
  scheduler_.abandoned(id);
}

void Spool::attempt_done(const std::string& id, AttemptResult result) {
  auto finished = deliveries_.find(id);
  if (finished != deliveries_.end()) {
    loop_.defer_delete(std::move(finished->second));  // we are inside its callback
    deliveries_.erase(finished);
  }
  if (stopping_ && deliveries_.empty()) loop_.post([this]() { finish_shutdown(); });
  const QueueEntry* entry = index_.find(id);
  if (!entry) return;  // deleted by the operator meanwhile
  Settlement settlement = scheduler_.attempt_done(id, result, result.no_endpoint);
  metrics_.delivery_attempt(!settlement.bounced.empty() ? "refused"
                            : settlement.finished       ? "delivered"
                                                        : "deferred",
                            entry->layout.envelope.route);
  const auto& recipients = entry->layout.envelope.recipients;
  if (settlement.finished && settlement.bounced.empty() && !settlement.delivered.empty()) {
    // Everyone has it: one line says so, for the attempt and for the message (that it then
    // leaves the queue goes without saying).
    std::string to;
    for (std::size_t i : settlement.delivered)
      to.append(to.empty() ? "" : ",").append(recipients[i]);
    log::info("delivered", {{"queue_id", id},
                            {"to", to},
                            {"recipients", std::to_string(settlement.delivered.size())},
                            {"endpoint", result.endpoint.empty() ? "none" : result.endpoint},
                            {"route", result.route},
                            {"reply", result.reply},
                            {"attempts", std::to_string(settlement.state.attempts)},
                            {"ms", std::to_string(static_cast<long>(result.seconds * 1000))}});
  } else {
    for (std::size_t i : settlement.delivered)
      log::info("delivered", {{"queue_id", id},
                              {"to", recipients[i]},
                              {"reply", settlement.state.recipients[i].reply}});
  }
  for (std::size_t i : settlement.bounced)
    log::warn(
        settlement.expired ? "expired" : "refused",
        {{"queue_id", id}, {"to", recipients[i]}, {"reply", settlement.state.recipients[i].reply}});
  if (!settlement.finished) {
    std::size_t pending = 0;
    for (const auto& recipient : settlement.state.recipients)
      pending += recipient.status == RecipientStatus::Pending;
    log::info(
        "deferred",
        {{"queue_id", id},
         {"attempts", std::to_string(settlement.state.attempts)},
         {"pending", std::to_string(pending)},
         {"next_in_s", std::to_string((settlement.state.next_attempt_ms - clock_.now_ms()) / 1000)},
         {"error", settlement.state.last_error}});
  }
  settled(id, std::move(settlement));
  pump();  // a delivery slot is free: the next due message starts now, not at the next tick
}

// ---- settlement -----------------------------------------------------------------------

void Spool::finish_settled(const std::string& id) {
  const QueueEntry& entry = *index_.find(id);
  Settlement settlement;
  settlement.state = entry.state;
  settlement.finished = true;
  for (std::size_t i = 0; i < entry.state.recipients.size(); ++i)
    (entry.state.recipients[i].status == RecipientStatus::Bounced ? settlement.bounced
                                                                  : settlement.delivered)
        .push_back(i);
  settled(id, std::move(settlement), false);
}

void Spool::settled(const std::string& id, Settlement settlement, bool count) {
  index_.set_state(id, settlement.state);
  const QueueEntry& entry = *index_.find(id);
  if (!settlement.finished) {
    // Durable, so a restart neither repeats delivered recipients nor forgets the backoff.
    committer_->write_state(id, encode_state(entry.state), false, [id](Status written) {
      if (!written)
        log::error("spool_state_write_failed",
                   {{"queue_id", id}, {"detail", written.error().message}});
    });
    publish_metrics();
    pump();
    return;
  }
  const double waited =
      static_cast<double>(clock_.now_ms() - entry.layout.envelope.arrival_ms) / 1000.0;
  // The message leaves the queue: its one count (MessageLedger).
  relay::MessageLedger ledger(metrics_);
  if (settlement.bounced.empty()) {
    if (count)
      ledger.left_queue(metrics::MessageResult::Relayed, true, waited, entry.layout.envelope.route);
    // Right after the attempt that logged its `delivered` line (count); a message settled
    // before a restart (finish_settled) says `removed`.
    leave_queue(id, false, count ? Leaving::Delivered : Leaving::Other);
    return;
  }
  if (count)
    ledger.left_queue(
        settlement.expired ? metrics::MessageResult::Expired : metrics::MessageResult::Bounced,
        !settlement.delivered.empty(), waited, entry.layout.envelope.route);
  // The settled recipients are recorded first: a crash before the bounce is queued then
  // redoes neither the deliveries nor the refusals, only the bounce (and failed/ keeps the
  // state, which says why).
  committer_->write_state(id, encode_state(entry.state), false, [](Status) {});
  const bool may_bounce = config_.bounces && !entry.layout.envelope.sender.empty();
  // Read once: the bounce check and the report both need the original's header section.
  std::string headers =
      may_bounce ? read_headers(directory_->env(), directory_->queue_fd(), id, entry.layout) : "";
  if (!may_bounce || is_bounce(entry.layout.envelope.sender, headers)) {
    leave_queue(id, true);
    return;
  }
  index_.set_stage(id, Stage::Bouncing);
  send_bounce(id, settlement, std::move(headers), [this, id]() { leave_queue(id, false); });
}

std::string Spool::host_of(const std::string& label) const {
  // The DSN's Remote-MTA names a host (RFC 3464 2.3.5); the report names the endpoint.
  if (label.empty() || !selector_) return label;
  for (const auto& runtime : selector_->endpoints())
    if (runtime->endpoint.label() == label) return runtime->endpoint.host;
  return label;  // a reload removed it meanwhile: the label still says who answered
}

void Spool::send_bounce(const std::string& id, const Settlement& settlement,
                        std::string original_headers, std::function<void()> then) {
  const QueueEntry& entry = *index_.find(id);
  // A local sender ("root", "cron@vm-1234.internal") gets its report at its alias, as any
  // local recipient would: the provider would refuse the bare local address. A rewritten
  // sender's report goes to the client's sender, not to the provider-verified identity
  // that [rewrite] put in its place (nobody reads that mailbox for cron's mail).
  // When no alias maps the client's sender, the verified identity is the better place than
  // failed/: someone may read it, and the provider accepts it.
  const Envelope& envelope = entry.layout.envelope;
  std::vector<std::string> report_to{envelope.bounce_address()};
  if (envelope_policy_) {
    auto mapped = envelope_policy_->map_recipient(envelope.bounce_address());
    if (mapped.refusal && !envelope.original_sender.empty())
      mapped = envelope_policy_->map_recipient(envelope.sender);
    if (mapped.refusal) {
      log::warn("bounce_not_queued", {{"queue_id", id}, {"detail", mapped.refusal->summary()}});
      return leave_queue(id, true);  // failed/ keeps it, with the state that says why
    }
    report_to = std::move(mapped.addresses);
  }
  BounceInput input =
      dsn_inputs(DsnContext{hostname_, clock_.now_ms(), config_.max_lifetime,
                            [this](const std::string& label) { return host_of(label); }},
                 envelope, settlement, std::move(original_headers));
  // The report's To names whom it goes to, qualified: a bare "root" there is refused by
  // providers (SES: "Missing final '@domain'") as it is in the envelope.
  if (!report_to.empty()) input.original_sender = report_to.front();
  auto body = std::make_unique<relay::MessageBody>();
  body->append(build_bounce(input));
  smtp::PathArgument null_sender;
  // The report goes out the way the message came in: the original's route.
  accept(
      null_sender, report_to, std::move(body), "bounce:" + id,
      [this, id, then = std::move(then)](Result<std::string> bounce_id) {
        if (!bounce_id) {
          // The original stays queued (no loss); the next attempt settles it again.
          log::error("bounce_not_queued",
                     {{"queue_id", id}, {"detail", bounce_id.error().message}});
          // finished again by pump(): finish_settled()
          if (index_.find(id)) scheduler_.bounce_not_stored(id);
          return;
        }
        log::info("bounce_queued", {{"queue_id", id}, {"bounce_id", *bounce_id}});
        then();
      },
      entry.layout.envelope.route);
}

void Spool::leave_queue(const std::string& id, bool keep_in_failed, Leaving leaving) {
  const QueueEntry* entry = index_.find(id);
  if (!entry) return;
  if (keep_in_failed) {
    index_.set_stage(id, Stage::Failed, clock_.now_ms());
    committer_->move_to_failed(id, [id](Status moved) {
      if (!moved)
        log::error("spool_move_failed", {{"queue_id", id}, {"detail", moved.error().message}});
    });
    log::warn("kept_in_failed", {{"queue_id", id}});
  } else {
    const bool failed_area = entry->stage == Stage::Failed;
    index_.remove(id);
    const bool durable = leaving != Leaving::Delivered;
    committer_->apply(SpoolChange::remove(id, failed_area, durable), [id](Status removed) {
      if (!removed)
        log::error("spool_remove_failed", {{"queue_id", id}, {"detail", removed.error().message}});
    });
    if (durable) log::info("removed", {{"queue_id", id}});
  }
  publish_metrics();
}

// ---- operator -------------------------------------------------------------------------

Result<std::string> Spool::retry(const std::string& id) {
  const std::size_t count = scheduler_.retry_now(id);
  if (count == 0 && !id.empty() && id != "all") {
    const QueueEntry* entry = index_.find(id);
    if (!entry) return Error{"no message " + id + " in the queue"};
    return Error{entry->stage == Stage::Failed ? id + " is in failed/ (delete it, or resubmit it)"
                                               : id + " is being delivered now"};
  }
  log::info("queue_retry",
            {{"queue_id", id.empty() ? "all" : id}, {"messages", std::to_string(count)}});
  pump();
  return std::to_string(count) + " message(s) due now";
}

Result<std::string> Spool::remove(const std::string& id) {
  if (!index_.find(id)) return Error{"no message " + id + " in the queue"};
  abandon_delivery(id);
  log::warn("deleted_by_operator", {{"queue_id", id}});
  leave_queue(id, false);
  return id + " deleted";
}

Result<std::string> Spool::bounce(const std::string& id) {
  const QueueEntry* entry = index_.find(id);
  if (!entry) return Error{"no message " + id + " in the queue"};
  if (entry->stage == Stage::Failed) return Error{id + " already failed (it is in failed/)"};
  if (entry->stage == Stage::Bouncing) return Error{id + " is being bounced already"};
  abandon_delivery(id);
  log::warn("bounced_by_operator", {{"queue_id", id}});
  if (!entry->has_pending())
    finish_settled(id);  // settled already: its bounce (if any) is retried now
  else
    settled(id, bounce_pending(entry->state, "bounced by the operator"));
  return id + " bounced";
}

std::vector<QueueEntryView> Spool::list() const {
  std::vector<QueueEntryView> views;
  views.reserve(index_.size());
  for (const auto& [id, entry] : index_.entries()) {
    QueueEntryView view;
    view.id = id;
    view.arrival_ms = entry.layout.envelope.arrival_ms;
    view.size = entry.layout.body_size;
    view.sender = entry.layout.envelope.sender;
    view.recipients = entry.layout.envelope.recipients;
    view.state = entry.state;
    view.failed = entry.stage == Stage::Failed;
    view.in_flight = entry.stage == Stage::InFlight;
    views.push_back(std::move(view));
  }
  return views;
}

// ---- metrics --------------------------------------------------------------------------

void Spool::publish_metrics() {
  double age = 0;
  if (auto oldest = index_.oldest_arrival_ms())
    age = static_cast<double>(clock_.now_ms() - *oldest) / 1000.0;
  const QueueIndex::Counts& counts = index_.counts();
  metrics_.queue_size(counts.queued, counts.deferred, counts.failed, counts.queued_bytes,
                      std::max(age, 0.0));
}

}  // namespace portrelay::spool
