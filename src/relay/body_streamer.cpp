#include "portrelay/relay/body_streamer.hpp"

namespace portrelay::relay {

BodyStreamer::BodyStreamer(net::Connection& connection, const MessageBody& body)
    : connection_(connection), body_(body) {}

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
    connection_.send(wire);
  }
  if (offset_ < body_.size()) {
    // The socket is slower than the file: continue when the queue has drained.
    connection_.on_drained([this]() { pump(); });
    if (on_waiting_) on_waiting_();
    return;
  }
  wire.clear();
  stuffer_.finish(wire);
  connection_.send(wire);
  auto done = std::move(on_done_);
  stop();
  done(std::nullopt);
}

}  // namespace portrelay::relay
