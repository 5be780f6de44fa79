#include "portrelay/relay/body_streamer.hpp"

namespace portrelay::relay {

BodyStreamer::BodyStreamer(net::Connection& connection, const MessageBody& body,
                           std::optional<Rewrite> rewrite)
    : connection_(connection), body_(body), rewrite_(std::move(rewrite)) {}

BodyStreamer::~BodyStreamer() { stop(); }

void BodyStreamer::start(std::function<void()> on_waiting, Done on_done) {
  on_waiting_ = std::move(on_waiting);
  on_done_ = std::move(on_done);
  pump();
}

void BodyStreamer::stop() {
  on_done_ = nullptr;
  on_waiting_ = nullptr;
  connection_.on_drained(nullptr);
}

void BodyStreamer::pump() {
  if (!on_done_) return;
  if (rewrite_ && !send_rewritten_header()) {
    auto done = std::move(on_done_);
    stop();
    return done("cannot read the message body back");
  }
  std::string chunk, wire;
  while (offset_ < body_.size() && connection_.write_queue_size() < kMaxQueued) {
    if (!body_.read(offset_, kChunk, chunk) || chunk.empty()) {
      auto done = std::move(on_done_);
      stop();
      return done("cannot read the message body back");
    }
    offset_ += chunk.size();
    wire.clear();
    stuffer_.encode(chunk, wire);
    if (offset_ == body_.size()) break;  // the last chunk leaves with the final dot
    connection_.send(wire);
  }
  if (offset_ < body_.size()) {
    // The socket is slower than the file: continue when the queue has drained.
    connection_.on_drained([this]() { pump(); });
    if (on_waiting_) on_waiting_();
    return;
  }
  // `wire` holds the last chunk (or nothing, for a body that was all sent before): one
  // write carries it and the end-of-data line.
  stuffer_.finish(wire);
  connection_.send(wire);
  auto done = std::move(on_done_);
  stop();
  done(std::nullopt);
}

bool BodyStreamer::send_rewritten_header() {
  std::string head, chunk;
  smtp::HeaderSection section;
  while (true) {
    if (head.size() < body_.size()) {
      if (!body_.read(head.size(), kChunk, chunk) || chunk.empty()) return false;
      head += chunk;
    }
    const bool at_end = head.size() >= body_.size();
    section = smtp::parse_header_section(head, at_end);
    if (section.complete || at_end || head.size() > kMaxHeader) break;
  }
  Rewrite rewrite = std::move(*rewrite_);
  rewrite_.reset();
  if (!section.complete) {  // too long to hold: sent as it is
    if (rewrite.on_rewritten) rewrite.on_rewritten(std::nullopt);
    return true;
  }
  smtp::HeaderRewriteResult result = smtp::rewrite_header_section(head, section, rewrite.plan);
  std::string wire;
  stuffer_.encode(result.header, wire);
  connection_.send(wire);
  offset_ = section.size;
  result.header.clear();
  if (rewrite.on_rewritten) rewrite.on_rewritten(result);
  return true;
}

}  // namespace portrelay::relay
