#pragma once
// relay::BodyStreamer: sends a stored message body after the upstream's 354: dot-stuffed,
// in chunks, never more than `kMaxQueued` bytes ahead of the socket, then the final
// "<CRLF>.<CRLF>". A body of any size costs one chunk of memory here.
//
// With a HeaderRewrite (an [[upstream]] identity), the header section is read first (up to
// kMaxHeader octets), rewritten and sent, and the rest follows from the stored message as
// usual: one pass, and the stored message is never changed or copied.
#include <functional>
#include <optional>
#include <string>

#include "portrelay/net/connection.hpp"
#include "portrelay/relay/message_body.hpp"
#include "portrelay/smtp/data_reader.hpp"
#include "portrelay/smtp/header_rewrite.hpp"

namespace portrelay::relay {

class BodyStreamer {
 public:
  static constexpr std::size_t kChunk = 64 * 1024;
  static constexpr std::size_t kMaxQueued = 1024 * 1024;
  // A header section longer than this is sent as it is (logged by the owner).
  static constexpr std::size_t kMaxHeader = 256 * 1024;

  // What the rewrite did: the result (without its header text), or nullopt when the
  // header section was too long to rewrite.
  using HeaderRewritten = std::function<void(const std::optional<smtp::HeaderRewriteResult>&)>;
  struct Rewrite {
    smtp::HeaderRewrite plan;
    HeaderRewritten on_rewritten;
  };

  // `on_waiting` runs each time the socket must drain before more is sent (the owner
  // bounds that wait); `on_done` runs once: nullopt when the final dot is queued, or why
  // the body could not be read back. Neither runs after stop() or destruction. The
  // connection must outlive the streamer.
  using Done = std::function<void(std::optional<std::string> error)>;
  BodyStreamer(net::Connection& connection, const MessageBody& body,
               std::optional<Rewrite> rewrite = std::nullopt);
  ~BodyStreamer();
  void start(std::function<void()> on_waiting, Done on_done);
  void stop();

 private:
  void pump();
  // Sends the rewritten header section; false when the body could not be read.
  bool send_rewritten_header();

  net::Connection& connection_;
  const MessageBody& body_;
  std::uint64_t offset_ = 0;
  std::optional<Rewrite> rewrite_;  // reset once the header section is sent
  smtp::DotStuffer stuffer_;
  std::function<void()> on_waiting_;
  Done on_done_;
};

}  // namespace portrelay::relay
