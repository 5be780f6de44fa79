// libFuzzer target: the SMTP server state machine driven by arbitrary client bytes and
// arbitrary answers to its asynchronous operations (upstream replies, AUTH results, TLS,
// timeouts, shutdown, shedding, output backpressure), in any order. Invariants:
// - everything sent is a sequence of complete, well-formed replies (nothing after a close);
// - at most one asynchronous operation is outstanding, and none after the close;
// - message content handed on never has a bare CR or LF or a NUL, and never exceeds the
//   size limit; data_end comes only after data_begin, without a rejection in between.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "portrelay/smtp/reply.hpp"
#include "portrelay/smtp/server_session.hpp"

namespace {

using namespace portrelay::smtp;

class Handler : public ServerSessionHandler {
 public:
  ServerSession* session = nullptr;
  ReplyParser replies;
  bool closed = false;
  bool pending = false;
  bool in_data = false;
  std::string content;
  std::size_t queued = 0;
  std::uint64_t max_size = 0;

  void send(std::string bytes) override {
    if (closed || bytes.empty()) std::abort();
    replies.feed(bytes);
    while (auto reply = replies.next()) {
      if (reply->code < 200 || reply->code > 599) std::abort();
    }
    if (replies.failed()) std::abort();
  }
  void close_after_send() override {
    if (closed) std::abort();
    closed = true;
  }
  void begin_async() {
    if (pending || closed) std::abort();
    pending = true;
  }
  void mail_from(const PathArgument& sender) override {
    for (char c : sender.address)
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f)
        std::abort();  // controls and 8-bit octets are refused before this
    begin_async();
  }
  void rcpt_to(const PathArgument& recipient) override {
    if (recipient.address.empty()) std::abort();
    mail_from(recipient);
  }
  void data_end() override {
    if (!in_data) std::abort();
    in_data = false;
    begin_async();
  }
  void authenticate(const std::string&, const std::string&) override { begin_async(); }
  void start_tls() override { begin_async(); }
  void data_begin() override {
    if (in_data || closed) std::abort();
    in_data = true;
    content.clear();
  }
  void data_chunk(std::string_view chunk) override {
    if (!in_data || chunk.empty()) std::abort();
    content.append(chunk);
    if (content.size() > max_size) std::abort();
    for (std::size_t i = 0; i < content.size(); ++i) {
      if (content[i] == '\0') std::abort();
      if (content[i] == '\n' && (i == 0 || content[i - 1] != '\r')) std::abort();
      if (content[i] == '\r' && i + 1 < content.size() && content[i + 1] != '\n') std::abort();
    }
  }
  void data_rejected(DataReader::Violation violation) override {
    if (!in_data || violation == DataReader::Violation::None) std::abort();
    in_data = false;
  }
  void reset() override { in_data = false; }
  std::size_t queued_output() const override { return queued; }
};

const char* const kAnswers[] = {
    "250 2.1.0 Ok\r\n",
    "250 2.0.0 Ok: relayed\r\n",
    "451 4.4.1 try later\r\n",
    "550 5.1.1 no such user\r\n",
    "421 4.4.2 upstream closing\r\n",
    "235 2.7.0 Authentication successful\r\n",
    "535 5.7.8 Authentication credentials invalid\r\n",
    "454 4.7.0 Temporary authentication failure\r\n",
    "250-multi\r\n250 line\r\n",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  ServerPolicy policy;
  policy.hostname = "fuzz.test";
  policy.max_message_size = 64 + data[1] * 16;
  policy.starttls_offered = data[0] & 1;
  policy.auth_offered = data[0] & 4;
  policy.auth_required = data[0] & 8;
  policy.max_queued_output = (data[0] & 16) ? 64 : 64 * 1024;
  policy.max_errors = 3 + (data[0] >> 5);
  Handler handler;
  handler.max_size = policy.max_message_size;
  ServerSession session(policy, handler, /*tls_from_start=*/(data[0] & 2) != 0);
  handler.session = &session;
  session.start();

  std::size_t pos = 2;
  while (pos < size) {
    const std::uint8_t op = data[pos++];
    const bool was_pending = handler.pending;
    switch (op % 16) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
      case 5:
      case 6:
      case 7: {
        // Client bytes: the length comes from the op byte, the bytes from the input.
        const std::size_t length = std::min<std::size_t>(size - pos, 1 + (op >> 3) * 4);
        session.feed(std::string_view(reinterpret_cast<const char*>(data + pos), length));
        pos += length;
        break;
      }
      case 8:
      case 9:
      case 10:
        if (pos < size) {
          const Reply reply = [&] {
            ReplyParser parser;
            parser.feed(kAnswers[data[pos++] % std::size(kAnswers)]);
            return *parser.next();
          }();
          handler.pending = false;
          session.complete(reply);
        }
        break;
      case 11:
        handler.pending = false;
        session.tls_started();
        break;
      case 12:
        session.on_timeout();
        break;
      case 13:
        session.shutdown();
        break;
      case 14:
        session.shed();
        break;
      case 15:
        handler.queued = (op >> 4) % 2 ? 0 : handler.queued + 1000;
        session.resume();
        break;
    }
    (void)was_pending;
    if (handler.closed && !session.closed()) std::abort();
    if (session.closed() && !handler.closed) std::abort();
  }
  return 0;
}
