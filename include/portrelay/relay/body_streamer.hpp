#pragma once
// relay::BodyStreamer: sends a stored message body after the upstream's 354: dot-stuffed,
// in chunks, never more than `kMaxQueued` bytes ahead of the socket, then the final
// "<CRLF>.<CRLF>". A body of any size costs one chunk of memory here.
#include <functional>
#include <optional>
#include <string>

#include "portrelay/net/connection.hpp"
#include "portrelay/relay/message_body.hpp"
#include "portrelay/smtp/data_reader.hpp"

namespace portrelay::relay {

class BodyStreamer {
 public:
  static constexpr std::size_t kChunk = 64 * 1024;
  static constexpr std::size_t kMaxQueued = 1024 * 1024;

  // `on_waiting` runs each time the socket must drain before more is sent (the owner
  // bounds that wait); `on_done` runs once: nullopt when the final dot is queued, or why
  // the body could not be read back. Neither runs after stop() or destruction. The
  // connection must outlive the streamer.
  using Done = std::function<void(std::optional<std::string> error)>;
  BodyStreamer(net::Connection& connection, const MessageBody& body);
  ~BodyStreamer();
  void start(std::function<void()> on_waiting, Done on_done);
  void stop();

 private:
  void pump();

  net::Connection& connection_;
  const MessageBody& body_;
  std::uint64_t offset_ = 0;
  smtp::DotStuffer stuffer_;
  std::function<void()> on_waiting_;
  Done on_done_;
};

}  // namespace portrelay::relay
