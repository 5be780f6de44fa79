#include "portrelay/spool/delivery.hpp"

#include <fcntl.h>

#include <utility>

#include "portrelay/base/log.hpp"
#include "portrelay/relay/message_ledger.hpp"
#include "portrelay/spool/spool_directory.hpp"

namespace portrelay::spool {
namespace {

smtp::PathArgument path_argument(const Envelope& envelope) {
  smtp::PathArgument sender;
  sender.address = envelope.sender;
  for (const auto& text : envelope.parameters) {
    auto equals = text.find('=');
    smtp::Parameter parameter;
    parameter.keyword = text.substr(0, equals);
    if (equals != std::string::npos) parameter.value = text.substr(equals + 1);
    sender.parameters.push_back(std::move(parameter));
  }
  return sender;
}

}  // namespace

Delivery::Delivery(net::Loop& loop, std::shared_ptr<relay::UpstreamSelector> selector,
                   metrics::Metrics& metrics, Env& env, int directory_fd, std::string id,
                   const RecordLayout& layout, const DeliveryState& state, Done done)
    : loop_(loop),
      env_(env),
      directory_fd_(directory_fd),
      id_(std::move(id)),
      layout_(layout),
      done_(std::move(done)),
      deliverer_(loop, std::move(selector), metrics, id_) {
  for (std::size_t i = 0; i < state.recipients.size(); ++i)
    if (state.recipients[i].status == RecipientStatus::Pending) pending_.push_back(i);
}

void Delivery::abandon() {
  done_ = nullptr;
  open_failed_.reset();
  deliverer_.reset();
}

void Delivery::start() {
  auto file = open_spool_file(env_, directory_fd_, id_, O_RDONLY);
  if (!file || !body_.attach_fd(*file, layout_.body_offset, layout_.body_size)) {
    // Every pending recipient waits: the file may be readable again (EMFILE, EIO). The
    // chain was not asked, so this is no sign that it is down.
    AttemptResult result;
    result.recipients.resize(layout_.envelope.recipients.size());
    result.error = file ? body_.error() : "queue/" + id_ + ": " + file.error().message;
    for (std::size_t index : pending_)
      result.recipients[index] = RecipientResult{RecipientVerdict::Transient, result.error, ""};
    open_failed_ = std::make_unique<net::Timer>(loop_.uv());
    open_failed_->start(std::chrono::milliseconds(0), [this, result = std::move(result)]() {
      auto done = std::move(done_);
      done_ = nullptr;
      if (done) done(result);
    });
    return;
  }
  std::vector<std::string> recipients;
  recipients.reserve(pending_.size());
  for (std::size_t index : pending_) recipients.push_back(layout_.envelope.recipients[index]);
  deliverer_.deliver(
      path_argument(layout_.envelope), recipients, body_, id_,
      [this](relay::DeliveryReport report) { finish(report); }, layout_.envelope.route);
}

void Delivery::finish(const relay::DeliveryReport& report) {
  std::size_t accepted = 0;
  for (const auto& recipient : report.recipients) accepted += recipient.rcpt_accepted;
  const bool delivered = report.outcome == relay::DeliveryOutcome::Delivered;
  // An attempt that delivered to every pending recipient is logged once, by the spool, as
  // the message's `delivered` line.
  if (!delivered || accepted != pending_.size())
    log::write(delivered ? log::Level::Info : log::Level::Warn, "delivery_attempt",
               {{"queue_id", id_},
                {"result", metrics::to_string(relay::message_result(report))},
                {"recipients", std::to_string(accepted)},
                {"endpoint", report.endpoint.empty() ? "none" : report.endpoint},
                {"route", report.route},
                {"reply", report.reply.summary()},
                {"ms", std::to_string(static_cast<long>(report.seconds * 1000))}});
  auto done = std::move(done_);
  done_ = nullptr;
  if (done) done(attempt_result(report, pending_, layout_.envelope.recipients.size()));
}

}  // namespace portrelay::spool
