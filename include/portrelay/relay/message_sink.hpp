#pragma once
// relay::MessageSink: where a client session's messages go. The submission server talks
// only to this interface; passthrough relaying (PassthroughRelay) is one implementation,
// a durable spool is another. One sink serves one client session, one transaction at a
// time, in SMTP order:
//
//   sender()  -> recipient()* -> body().append()* -> commit()      (one message)
//   reset() at any point abandons the transaction (RSET, EHLO, rejected content, ...).
//
// Contract: each ReplyCallback is called exactly once (possibly before the call that passed
// it returns), unless the sink is destroyed or reset first, in which case it is never
// called. A 2xx to commit() means the message is delivered or durably stored; anything
// else means the client keeps responsibility for it.
#include <functional>

#include "portrelay/relay/message_body.hpp"
#include "portrelay/smtp/command.hpp"
#include "portrelay/smtp/reply.hpp"

namespace portrelay::relay {

class MessageSink {
 public:
  using ReplyCallback = std::function<void(const smtp::Reply& reply)>;
  virtual ~MessageSink() = default;

  // Opens a transaction: the answer is the client's answer to MAIL.
  virtual void sender(const smtp::PathArgument& sender, ReplyCallback callback) = 0;
  // The answer is the client's answer to this RCPT.
  virtual void recipient(const smtp::PathArgument& recipient, ReplyCallback callback) = 0;
  // The message content, unstuffed, as the client sends it after DATA.
  virtual MessageBody& body() = 0;
  // End of data: the answer is the client's answer to the final dot.
  virtual void commit(ReplyCallback callback) = 0;
  virtual void reset() = 0;
};

}  // namespace portrelay::relay
