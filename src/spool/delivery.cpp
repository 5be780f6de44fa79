#include "portrelay/spool/delivery.hpp"

#include <fcntl.h>

#include "portrelay/spool/spool_directory.hpp"

namespace portrelay::spool {
namespace {

RecipientVerdict verdict_of(const smtp::Reply& reply) {
  if (reply.success()) return RecipientVerdict::Accepted;
  if (reply.permanent()) return RecipientVerdict::Permanent;
  return RecipientVerdict::Transient;
}

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

Delivery::Delivery(net::Loop& loop, std::unique_ptr<relay::MessageSink> sink, int directory_fd,
                   std::string name, const RecordLayout& layout, const DeliveryState& state,
                   Done done)
    : loop_(loop),
      sink_(std::move(sink)),
      directory_fd_(directory_fd),
      name_(std::move(name)),
      layout_(layout),
      done_(std::move(done)) {
  result_.recipients.resize(layout.envelope.recipients.size());
  for (std::size_t i = 0; i < state.recipients.size(); ++i)
    if (state.recipients[i].status == RecipientStatus::Pending) pending_.push_back(i);
}

Delivery::~Delivery() {
  if (sink_) sink_->reset();
}

void Delivery::abandon() {
  done_ = nullptr;
  if (sink_) sink_->reset();
}

void Delivery::start() {
  sink_->sender(path_argument(layout_.envelope), [this](const smtp::Reply& reply) {
    if (!reply.success()) {
      result_.error = reply.summary();
      result_.no_transaction = true;
      answer_rest(verdict_of(reply), reply.summary());
      finish();
      return;
    }
    next_recipient();
  });
}

void Delivery::next_recipient() {
  if (next_ == pending_.size()) {
    send_body();
    return;
  }
  const std::size_t index = pending_[next_++];
  smtp::PathArgument recipient;
  recipient.address = layout_.envelope.recipients[index];
  sink_->recipient(recipient, [this, index](const smtp::Reply& reply) {
    auto verdict = verdict_of(reply);
    if (verdict == RecipientVerdict::Accepted)
      accepted_.push_back(index);
    else
      result_.recipients[index] = RecipientResult{verdict, reply.summary()};
    next_recipient();
  });
}

void Delivery::send_body() {
  if (accepted_.empty()) {
    result_.error = "every recipient was refused";
    sink_->reset();
    finish();
    return;
  }
  relay::MessageBody& body = sink_->body();
  auto file = open_spool_file(directory_fd_, name_, O_RDONLY);
  if (!file || !body.attach_fd(*file, layout_.body_offset, layout_.body_size)) {
    result_.error = file ? body.error() : "queue/" + name_ + ": " + file.error().message;
    sink_->reset();
    answer_rest(RecipientVerdict::Transient, result_.error);
    finish();
    return;
  }
  sink_->commit([this](const smtp::Reply& reply) {
    if (!reply.success()) result_.error = reply.summary();
    for (std::size_t index : accepted_)
      result_.recipients[index] = RecipientResult{verdict_of(reply), reply.summary()};
    finish();
  });
}

void Delivery::answer_rest(RecipientVerdict verdict, const std::string& reply) {
  for (std::size_t index : pending_)
    if (!result_.recipients[index]) result_.recipients[index] = RecipientResult{verdict, reply};
}

void Delivery::finish() {
  auto done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(result_));
}

}  // namespace portrelay::spool
