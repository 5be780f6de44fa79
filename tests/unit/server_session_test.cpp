#include "portrelay/smtp/server_session.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace portrelay::smtp {
namespace {

using Phase = ServerSession::Phase;

Reply wire_reply(std::string_view wire) {
  ReplyParser parser;
  parser.feed(wire);
  auto reply = parser.next();
  EXPECT_TRUE(reply.has_value()) << wire;
  EXPECT_EQ(parser.buffered(), 0u) << wire;
  return reply.value_or(Reply{});
}

// Records everything the session asks of its I/O layer. Asynchronous operations stay
// unanswered unless the test set an automatic answer (which is then given synchronously,
// from inside the callback, to exercise re-entrancy).
class RecordingHandler : public ServerSessionHandler {
 public:
  ServerSession* session = nullptr;
  std::string sent;
  std::vector<std::string> calls;
  std::string content;
  std::string sent_when_start_tls_called;
  std::optional<Reply> auto_mail;
  std::optional<Reply> auto_rcpt;
  std::optional<Reply> auto_data_end;
  std::optional<std::uint64_t> size_limit;  // what the upstreams take (a relay's handler)

  std::string take_sent() { return std::exchange(sent, std::string()); }
  std::vector<std::string> take_calls() { return std::exchange(calls, {}); }
  bool closed() const {
    for (const auto& call : calls)
      if (call == "close") return true;
    return false;
  }

  void send(std::string bytes) override {
    EXPECT_FALSE(bytes.empty());
    sent += bytes;
  }
  void close_after_send() override { calls.push_back("close"); }
  void mail_from(const PathArgument& sender) override {
    calls.push_back("mail_from:" + sender.address);
    if (auto_mail) session->complete(*auto_mail);
  }
  void rcpt_to(const PathArgument& recipient) override {
    calls.push_back("rcpt_to:" + recipient.address);
    if (auto_rcpt) session->complete(*auto_rcpt);
  }
  void data_end() override {
    calls.push_back("data_end");
    if (auto_data_end) session->complete(*auto_data_end);
  }
  void authenticate(const std::string& username, const std::string& password) override {
    calls.push_back("authenticate:" + username + ":" + password);
  }
  void start_tls() override {
    calls.push_back("start_tls");
    sent_when_start_tls_called = sent;
  }
  void data_begin() override { calls.push_back("data_begin"); }
  void data_chunk(std::string_view chunk) override {
    EXPECT_FALSE(chunk.empty());
    content += chunk;
  }
  void data_rejected(DataReader::Violation violation) override {
    calls.push_back(std::string("data_rejected:") + to_string(violation));
  }
  void reset() override { calls.push_back("reset"); }
  std::uint64_t message_size_limit(std::uint64_t configured) const override {
    return size_limit.value_or(configured);
  }
};

constexpr char kEhloPlain[] =
    "250-mx.test\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 1000\r\n"
    "250-8BITMIME\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250 HELP\r\n";
constexpr char kDataGo[] = "354 End data with <CR><LF>.<CR><LF>\r\n";
constexpr char kOk[] = "250 2.0.0 Ok\r\n";

class ServerSessionTest : public ::testing::Test {
 protected:
  ServerSessionTest() {
    policy_.hostname = "mx.test";
    policy_.max_message_size = 1000;
  }

  // Creates the session and consumes the greeting.
  void start() {
    session_.emplace(policy_, handler_, tls_);
    handler_.session = &*session_;
    session_->start();
    EXPECT_EQ(handler_.take_sent(), "220 mx.test ESMTP portrelay\r\n");
  }
  ServerSession& session() { return *session_; }

  // Feeds bytes and returns what the session sent in response.
  std::string exchange(std::string_view bytes) {
    session_->feed(bytes);
    return handler_.take_sent();
  }
  std::string answer(std::string_view wire) {
    session_->complete(wire_reply(wire));
    return handler_.take_sent();
  }

  void ehlo() {
    session_->feed("EHLO client.test\r\n");
    handler_.take_sent();
  }
  // EHLO, MAIL and one RCPT accepted.
  void open_transaction() {
    ehlo();
    EXPECT_EQ(exchange("MAIL FROM:<a@b.test>\r\n"), "");
    EXPECT_EQ(answer("250 2.1.0 Ok\r\n"), "250 2.1.0 Ok\r\n");
    EXPECT_EQ(exchange("RCPT TO:<c@d.test>\r\n"), "");
    EXPECT_EQ(answer("250 2.1.5 Ok\r\n"), "250 2.1.5 Ok\r\n");
    EXPECT_EQ(handler_.take_calls(),
              (std::vector<std::string>{"mail_from:a@b.test", "rcpt_to:c@d.test"}));
  }
  void enter_data() {
    open_transaction();
    EXPECT_EQ(exchange("DATA\r\n"), kDataGo);
    EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"data_begin"});
    EXPECT_EQ(session().phase(), Phase::Data);
  }

  ServerPolicy policy_;
  bool tls_ = false;  // the session starts under TLS (implicit TLS)
  RecordingHandler handler_;
  std::optional<ServerSession> session_;
};

TEST_F(ServerSessionTest, GreetingNamesTheHost) {
  start();
  EXPECT_EQ(session().phase(), Phase::Command);
  EXPECT_TRUE(handler_.calls.empty());
}

TEST_F(ServerSessionTest, EhloListsExtensionsExactly) {
  start();
  EXPECT_EQ(exchange("EHLO client.test\r\n"), kEhloPlain);
}

TEST_F(ServerSessionTest, EhloOffersStarttlsOnlyBeforeTls) {
  policy_.starttls_offered = true;
  policy_.auth_offered = true;  // not advertised in clear text
  start();
  EXPECT_EQ(exchange("EHLO client.test\r\n"),
            "250-mx.test\r\n"
            "250-PIPELINING\r\n"
            "250-SIZE 1000\r\n"
            "250-8BITMIME\r\n"
            "250-ENHANCEDSTATUSCODES\r\n"
            "250-STARTTLS\r\n"
            "250 HELP\r\n");
}

TEST_F(ServerSessionTest, EhloOffersAuthOnlyUnderTls) {
  policy_.starttls_offered = true;
  tls_ = true;
  policy_.auth_offered = true;
  start();
  EXPECT_EQ(exchange("EHLO client.test\r\n"),
            "250-mx.test\r\n"
            "250-PIPELINING\r\n"
            "250-SIZE 1000\r\n"
            "250-8BITMIME\r\n"
            "250-ENHANCEDSTATUSCODES\r\n"
            "250-AUTH PLAIN LOGIN\r\n"
            "250 HELP\r\n");
}

TEST_F(ServerSessionTest, EhloWithoutDomainIsSyntaxError) {
  start();
  EXPECT_EQ(exchange("EHLO\r\n"), "501 5.5.4 Syntax: EHLO hostname\r\n");
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test>\r\n"), "503 5.5.1 Send HELO/EHLO first\r\n");
}

TEST_F(ServerSessionTest, HeloGetsPlainGreetingAndAllowsMail) {
  start();
  EXPECT_EQ(exchange("HELO client.test\r\n"), "250 mx.test\r\n");
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test>\r\n"), "");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"mail_from:a@b.test"});
}

TEST_F(ServerSessionTest, MailBeforeEhloIsBadSequence) {
  start();
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test>\r\n"), "503 5.5.1 Send HELO/EHLO first\r\n");
  EXPECT_TRUE(handler_.calls.empty());
}

TEST_F(ServerSessionTest, NestedMailIsBadSequence) {
  start();
  open_transaction();
  EXPECT_EQ(exchange("MAIL FROM:<x@y.test>\r\n"), "503 5.5.1 Nested MAIL command\r\n");
  EXPECT_TRUE(handler_.calls.empty());
}

TEST_F(ServerSessionTest, MailSyntaxErrorIs501) {
  start();
  ehlo();
  std::string sent = exchange("MAIL FROM:a@b.test\r\n");
  EXPECT_EQ(sent.rfind("501 5.1.7 Syntax: MAIL FROM:<address> (", 0), 0u) << sent;
  EXPECT_EQ(sent.find("\r\n"), sent.size() - 2) << "exactly one line";
  EXPECT_TRUE(handler_.calls.empty());
}

TEST_F(ServerSessionTest, MailSizeParameterIsCheckedAgainstLimit) {
  start();
  ehlo();
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test> SIZE=1001\r\n"),
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test> SIZE=12x\r\n"), "501 5.5.4 Syntax: SIZE=<octets>\r\n");
  EXPECT_TRUE(handler_.calls.empty());
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test> SIZE=1000 BODY=8BITMIME\r\n"), "");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"mail_from:a@b.test"});
}

// #18: the relay's own SIZE is what its upstreams accept, never above max_message_size.
TEST_F(ServerSessionTest, TheHandlersSizeLimitIsAdvertisedAndEnforced) {
  handler_.size_limit = 600;
  start();
  EXPECT_NE(exchange("EHLO client.test\r\n").find("250-SIZE 600\r\n"), std::string::npos);
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test> SIZE=601\r\n"),
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
  EXPECT_TRUE(handler_.calls.empty());
  // No SIZE= given: the data is held to the same limit, refused at the final dot before
  // the handler (the relay, the spool) sees the end of it.
  handler_.auto_mail = wire_reply("250 2.1.0 Ok\r\n");
  handler_.auto_rcpt = wire_reply("250 2.1.5 Ok\r\n");
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n"),
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
  EXPECT_EQ(exchange("DATA\r\n"), kDataGo);
  handler_.take_calls();
  std::string body;
  for (int i = 0; i < 10; ++i) body += std::string(70, 'x') + "\r\n";
  EXPECT_EQ(exchange(body + ".\r\n"),
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"data_rejected:too_big"});
}

TEST_F(ServerSessionTest, AHandlerLimitAboveTheConfiguredOneIsIgnored) {
  handler_.size_limit = 5000;  // max_message_size is 1000
  start();
  EXPECT_NE(exchange("EHLO client.test\r\n").find("250-SIZE 1000\r\n"), std::string::npos);
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test> SIZE=1001\r\n"),
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
}

TEST_F(ServerSessionTest, UnknownMailParameterIs555) {
  start();
  ehlo();
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test> FOO=bar\r\n"),
            "555 5.5.4 Unsupported MAIL parameter FOO\r\n");
  EXPECT_TRUE(handler_.calls.empty());
}

TEST_F(ServerSessionTest, EightBitAddressesAre553WithoutSmtpUtf8) {
  start();
  ehlo();
  const std::string refused =
      "553 5.6.7 Non-ASCII address needs SMTPUTF8, which is not offered\r\n";
  EXPECT_EQ(exchange("MAIL FROM:<j\xc3\xbcrgen@b.test>\r\n"), refused);
  EXPECT_EQ(exchange("MAIL FROM:<a@b\xff.test>\r\n"), refused) << "invalid UTF-8 too";
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test> BODY=8BITM\xc3\x8fME\r\n"), refused);
  EXPECT_TRUE(handler_.calls.empty());
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test>\r\n"), "");
  EXPECT_EQ(answer("250 2.1.0 Ok\r\n"), "250 2.1.0 Ok\r\n");
  handler_.take_calls();
  EXPECT_EQ(exchange("RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b.test>\r\n"), refused);
  EXPECT_TRUE(handler_.calls.empty());
  EXPECT_EQ(session().recipients(), 0u);
}

// RCPT TO:<root> and MAIL FROM:<root>: 501 by default; taken, and handed to the handler
// as given, when the policy says the handler maps local names.
TEST_F(ServerSessionTest, BareLocalPartsAre501UnlessThePolicyTakesThem) {
  start();
  ehlo();
  EXPECT_EQ(exchange("MAIL FROM:<root>\r\n").rfind("501 5.1.7 ", 0), 0u);
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test>\r\n"), "");
  EXPECT_EQ(answer("250 2.1.0 Ok\r\n"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(exchange("RCPT TO:<root>\r\n").rfind("501 5.1.3 ", 0), 0u);
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"mail_from:a@b.test"});

  policy_.bare_local_parts = true;
  start();
  ehlo();
  EXPECT_EQ(exchange("MAIL FROM:<cron>\r\n"), "");
  EXPECT_EQ(answer("250 2.1.0 Ok\r\n"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(exchange("RCPT TO:<root>\r\n"), "");
  EXPECT_EQ(answer("250 2.1.5 Ok\r\n"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(exchange("RCPT TO:<\"john doe\">\r\n"), "");
  EXPECT_EQ(answer("550 5.1.1 no alias\r\n"), "550 5.1.1 no alias\r\n");
  // Nothing else is loosened.
  EXPECT_EQ(exchange("RCPT TO:<ro..ot>\r\n").rfind("501 5.1.3 ", 0), 0u);
  EXPECT_EQ(exchange("RCPT TO:<root@>\r\n").rfind("501 5.1.3 ", 0), 0u);
  EXPECT_EQ(handler_.take_calls(),
            (std::vector<std::string>{"mail_from:cron", "rcpt_to:root", "rcpt_to:\"john doe\""}));
}

TEST_F(ServerSessionTest, RcptBeforeMailIsBadSequence) {
  start();
  ehlo();
  EXPECT_EQ(exchange("RCPT TO:<c@d.test>\r\n"), "503 5.5.1 Need MAIL command first\r\n");
  EXPECT_TRUE(handler_.calls.empty());
}

TEST_F(ServerSessionTest, RejectedMailLeavesNoTransaction) {
  start();
  ehlo();
  exchange("MAIL FROM:<a@b.test>\r\n");
  EXPECT_EQ(answer("550 5.7.1 Sender refused\r\n"), "550 5.7.1 Sender refused\r\n");
  EXPECT_FALSE(session().in_transaction());
  EXPECT_EQ(exchange("RCPT TO:<c@d.test>\r\n"), "503 5.5.1 Need MAIL command first\r\n");
}

TEST_F(ServerSessionTest, TooManyRecipientsIs452AndNotForwarded) {
  policy_.max_recipients = 2;
  start();
  open_transaction();
  exchange("RCPT TO:<refused@d.test>\r\n");
  EXPECT_EQ(answer("550 5.1.1 No such user\r\n"), "550 5.1.1 No such user\r\n");
  exchange("RCPT TO:<e@d.test>\r\n");
  EXPECT_EQ(answer("250 2.1.5 Ok\r\n"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(session().recipients(), 2u);
  handler_.take_calls();
  EXPECT_EQ(exchange("RCPT TO:<f@d.test>\r\n"), "452 4.5.3 Too many recipients\r\n");
  EXPECT_TRUE(handler_.calls.empty());
  EXPECT_EQ(session().recipients(), 2u);
}

TEST_F(ServerSessionTest, DataWithoutRecipientsIs554) {
  start();
  ehlo();
  exchange("MAIL FROM:<a@b.test>\r\n");
  answer("250 2.1.0 Ok\r\n");
  exchange("RCPT TO:<c@d.test>\r\n");
  answer("550 5.1.1 No such user\r\n");
  EXPECT_EQ(exchange("DATA\r\n"), "554 5.5.1 No valid recipients\r\n");
  EXPECT_EQ(session().phase(), Phase::Command);
}

TEST_F(ServerSessionTest, DataBeforeMailIsBadSequence) {
  start();
  ehlo();
  EXPECT_EQ(exchange("DATA\r\n"), "503 5.5.1 Need MAIL command first\r\n");
}

TEST_F(ServerSessionTest, FullTransactionDeliversUnstuffedContent) {
  start();
  enter_data();
  // Content in several pieces, the dot-stuffed line split across feeds.
  EXPECT_EQ(exchange("Subject: hi\r\n\r\n."), "");
  EXPECT_EQ(exchange(".leading dot\r\nbody\r\n.\r"), "");
  EXPECT_TRUE(handler_.calls.empty());
  EXPECT_EQ(exchange("\n"), "");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"data_end"});
  EXPECT_EQ(handler_.content, "Subject: hi\r\n\r\n.leading dot\r\nbody\r\n");
  EXPECT_EQ(session().phase(), Phase::Waiting);
  EXPECT_TRUE(session().in_transaction());
  EXPECT_EQ(answer("250 2.0.0 Ok: queued as 42\r\n"), "250 2.0.0 Ok: queued as 42\r\n");
  EXPECT_FALSE(session().in_transaction());
  EXPECT_EQ(session().recipients(), 0u);
  EXPECT_EQ(session().phase(), Phase::Command);
  // A new transaction can start right away.
  EXPECT_EQ(exchange("MAIL FROM:<>\r\n"), "");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"mail_from:"});
}

TEST_F(ServerSessionTest, PipelinedCommandsAreAnsweredStrictlyInOrder) {
  start();
  ehlo();
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nRCPT TO:<e@d.test>\r\n"
                     "DATA\r\n"),
            "");
  // Only the first command is dispatched until it is answered.
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"mail_from:a@b.test"});
  EXPECT_EQ(session().phase(), Phase::Waiting);
  EXPECT_GT(session().buffered_input(), 0u);

  EXPECT_EQ(answer("250 2.1.0 Sender ok\r\n"), "250 2.1.0 Sender ok\r\n");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"rcpt_to:c@d.test"});
  EXPECT_EQ(answer("250 2.1.5 Recipient ok\r\n"), "250 2.1.5 Recipient ok\r\n");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"rcpt_to:e@d.test"});
  // The DATA reply follows the second RCPT's reply in the same write.
  EXPECT_EQ(answer("550 5.1.1 No such user\r\n"),
            std::string("550 5.1.1 No such user\r\n") + kDataGo);
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"data_begin"});
  EXPECT_EQ(session().recipients(), 1u);
  EXPECT_EQ(session().buffered_input(), 0u);
}

TEST_F(ServerSessionTest, BytesAfterEndOfDataWaitForTheDataReply) {
  start();
  enter_data();
  EXPECT_EQ(exchange("body\r\n.\r\nMAIL FROM:<x@y.test>\r\nNOOP\r\n"), "");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"data_end"});
  EXPECT_EQ(handler_.content, "body\r\n");
  EXPECT_EQ(answer("250 2.0.0 queued\r\n"), "250 2.0.0 queued\r\n");
  // MAIL is now dispatched (not nested: the transaction ended) and NOOP waits behind it.
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"mail_from:x@y.test"});
  EXPECT_EQ(answer("250 2.1.0 Ok\r\n"), std::string("250 2.1.0 Ok\r\n") + kOk);
}

TEST_F(ServerSessionTest, SmugglingSequencesAreRejectedWhole) {
  struct Case {
    std::string body;
    std::string violation;
  };
  const std::vector<Case> cases = {
      {"hello\n.\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<v@x.test>\r\nDATA\r\nevil\r\n.\r\n",
       "data_rejected:bare_lf"},
      {"hello\r.\rMAIL FROM:<evil@x.test>\r\nDATA\r\nevil\r\n.\r\n", "data_rejected:bare_cr"},
      {"hello\n.\r\nMAIL FROM:<evil@x.test>\r\n.\r\n", "data_rejected:bare_lf"},
      {"hello\r\n.\nMAIL FROM:<evil@x.test>\r\n.\r\n", "data_rejected:bare_lf"},
      {"hello\r.\r\nMAIL FROM:<evil@x.test>\r\n.\r\n", "data_rejected:bare_cr"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(::testing::PrintToString(c.body));
    handler_ = RecordingHandler{};
    start();
    enter_data();
    EXPECT_EQ(exchange(c.body),
              "554 5.6.0 Message contains a bare CR or LF; use CRLF line endings\r\n");
    EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{c.violation});
    EXPECT_EQ(handler_.content.find("evil"), std::string::npos);
    EXPECT_FALSE(session().in_transaction());
    EXPECT_EQ(session().phase(), Phase::Command);
    // The session goes on, with a fresh transaction.
    EXPECT_EQ(exchange("MAIL FROM:<a@b.test>\r\n"), "");
    EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"mail_from:a@b.test"});
  }
}

TEST_F(ServerSessionTest, NulSmugglingIsRejectedWhole) {
  // A receiver that drops NUL would see "<CRLF>.<CRLF>" here and run the rest as commands.
  for (std::string body : {std::string("hello\r\n\0.\r\nMAIL FROM:<evil@x.test>\r\n.\r\n", 39),
                           std::string("hello\r\n.\0\r\nMAIL FROM:<evil@x.test>\r\n.\r\n", 39)}) {
    SCOPED_TRACE(::testing::PrintToString(body));
    handler_ = RecordingHandler{};
    start();
    enter_data();
    EXPECT_EQ(exchange(body), "554 5.6.0 Message contains a NUL octet; not relayed\r\n");
    EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"data_rejected:nul"});
    EXPECT_EQ(handler_.content.find("evil"), std::string::npos);
    EXPECT_FALSE(session().in_transaction());
  }
}

TEST_F(ServerSessionTest, NulInCommandIs500AndNotExecuted) {
  start();
  ehlo();
  EXPECT_EQ(exchange(std::string("MAIL FROM:<a@b.test>\0\r\n", 23)),
            "500 5.5.2 Syntax error: NUL octet in command\r\n");
  EXPECT_EQ(exchange(std::string("NOOP\0\r\n", 7)),
            "500 5.5.2 Syntax error: NUL octet in command\r\n");
  EXPECT_TRUE(handler_.calls.empty());
  EXPECT_EQ(exchange("NOOP\r\n"), kOk);
}

TEST_F(ServerSessionTest, TooBigBodyIs552) {
  policy_.max_message_size = 100;
  start();
  enter_data();
  std::string body;
  for (int i = 0; i < 10; ++i) body += std::string(40, 'x') + "\r\n";
  EXPECT_EQ(exchange(body + ".\r\nNOOP\r\n"),
            std::string("552 5.3.4 Message size exceeds fixed maximum message size\r\n") + kOk);
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"data_rejected:too_big"});
  EXPECT_LE(handler_.content.size(), 100u);
  EXPECT_FALSE(session().in_transaction());
}

TEST_F(ServerSessionTest, OverlongTextLineIs554) {
  policy_.max_message_size = 1 << 20;
  start();
  enter_data();
  EXPECT_EQ(exchange(std::string(999, 'y') + "\r\n.\r\n"),
            "554 5.6.0 Message has a line longer than 998 octets; not relayed\r\n");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"data_rejected:line_too_long"});
}

TEST_F(ServerSessionTest, LongCommandLineInOneFeedGetsOne500) {
  policy_.max_command_line = 64;
  start();
  // 62 octets + CRLF = 64: the limit itself is fine.
  std::string fits = "NOOP " + std::string(57, 'x');
  ASSERT_EQ(fits.size(), 62u);
  EXPECT_EQ(exchange(fits + "\r\n"), kOk);
  EXPECT_EQ(exchange(fits + "x\r\nNOOP\r\n"), std::string("500 5.5.2 Line too long\r\n") + kOk);
}

TEST_F(ServerSessionTest, LongCommandLineInManyChunksGetsExactlyOne500) {
  policy_.max_command_line = 64;
  start();
  std::string sent = exchange("NOOP ");
  for (int i = 0; i < 20; ++i) sent += exchange(std::string(30, 'x'));
  sent += exchange("tail\r");
  EXPECT_EQ(sent, "500 5.5.2 Line too long\r\n");
  // The rest of the long line is dropped; the next command works.
  EXPECT_EQ(exchange("\nNOOP\r\n"), kOk);
  EXPECT_FALSE(session().closed());
  // Memory stays bounded while a long line is skipped.
  EXPECT_LT(session().buffered_input(), 64u);
}

TEST_F(ServerSessionTest, LineJustOverLimitFedByteByByteGetsOne500) {
  policy_.max_command_line = 64;
  start();
  std::string line = "NOOP " + std::string(58, 'x') + "\r\nNOOP\r\n";  // 63 + CRLF
  std::string sent;
  for (char c : line) sent += exchange(std::string(1, c));
  EXPECT_EQ(sent, std::string("500 5.5.2 Line too long\r\n") + kOk);
}

TEST_F(ServerSessionTest, TooManyErrorsCloseWith421) {
  policy_.max_errors = 3;
  start();
  EXPECT_EQ(exchange("BOGUS\r\nBOGUS\r\nBOGUS\r\nNOOP\r\n"),
            "500 5.5.2 Command not recognized\r\n"
            "500 5.5.2 Command not recognized\r\n"
            "500 5.5.2 Command not recognized\r\n"
            "421 4.7.0 mx.test Too many errors, closing\r\n");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"close"});
  EXPECT_TRUE(session().closed());
  EXPECT_EQ(exchange("NOOP\r\n"), "");
}

TEST_F(ServerSessionTest, QuitSays221AndCloses) {
  start();
  EXPECT_EQ(exchange("QUIT\r\nNOOP\r\n"), "221 2.0.0 Bye\r\n");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"close"});
  EXPECT_TRUE(session().closed());
  EXPECT_EQ(session().phase(), Phase::Closed);
  EXPECT_EQ(exchange("NOOP\r\n"), "");
}

TEST_F(ServerSessionTest, QuitDuringTransactionResetsIt) {
  start();
  open_transaction();
  EXPECT_EQ(exchange("QUIT\r\n"), "221 2.0.0 Bye\r\n");
  EXPECT_EQ(handler_.take_calls(), (std::vector<std::string>{"reset", "close"}));
}

TEST_F(ServerSessionTest, RsetAbandonsTheTransaction) {
  start();
  open_transaction();
  EXPECT_EQ(exchange("RSET\r\n"), kOk);
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"reset"});
  EXPECT_FALSE(session().in_transaction());
  EXPECT_EQ(session().recipients(), 0u);
  EXPECT_EQ(exchange("RCPT TO:<c@d.test>\r\n"), "503 5.5.1 Need MAIL command first\r\n");
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test>\r\n"), "");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"mail_from:a@b.test"});
}

TEST_F(ServerSessionTest, SimpleCommands) {
  start();
  EXPECT_EQ(exchange("VRFY someone\r\n"),
            "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n");
  EXPECT_EQ(exchange("noop\r\n"), kOk);
  EXPECT_EQ(exchange("FOO bar\r\n"), "500 5.5.2 Command not recognized\r\n");
  EXPECT_EQ(exchange("\r\n"), "500 5.5.2 Syntax error: empty command\r\n");
  EXPECT_EQ(exchange("EXPN list\r\n"), "502 5.5.1 EXPN not supported\r\n");
  EXPECT_EQ(exchange("HELP\r\n"),
            "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS "
            "AUTH\r\n");
  EXPECT_TRUE(handler_.calls.empty());
}

TEST_F(ServerSessionTest, StarttlsDiscardsPipelinedPlaintext) {
  policy_.starttls_offered = true;
  start();
  ehlo();
  EXPECT_EQ(exchange("STARTTLS\r\nMAIL FROM:<a@b.test>\r\n"), "220 2.0.0 Ready to start TLS\r\n");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"start_tls"});
  // The 220 must be on its way (in plaintext) before the handshake starts.
  EXPECT_EQ(handler_.sent_when_start_tls_called, "220 2.0.0 Ready to start TLS\r\n");
  EXPECT_EQ(session().phase(), Phase::Waiting);
  EXPECT_EQ(session().buffered_input(), 0u);

  session().tls_started();
  EXPECT_EQ(handler_.take_sent(), "");
  EXPECT_TRUE(handler_.calls.empty());
  // RFC 3207: the session starts over, EHLO is needed again, STARTTLS is gone.
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test>\r\n"), "503 5.5.1 Send HELO/EHLO first\r\n");
  EXPECT_EQ(exchange("EHLO client.test\r\n"), kEhloPlain);
  EXPECT_EQ(exchange("STARTTLS\r\n"), "502 5.5.1 Already using TLS\r\n");
  EXPECT_TRUE(handler_.calls.empty());
}

TEST_F(ServerSessionTest, InputDuringTlsHandshakeWaitsForTlsStarted) {
  policy_.starttls_offered = true;
  start();
  ehlo();
  exchange("STARTTLS\r\n");
  handler_.take_calls();
  // Decrypted bytes may reach the session before the handshake callback.
  EXPECT_EQ(exchange("EHLO client.test\r\n"), "");
  session().tls_started();
  EXPECT_EQ(handler_.take_sent(), kEhloPlain);
}

TEST_F(ServerSessionTest, StarttlsWhenNotOfferedIs502) {
  start();
  ehlo();
  EXPECT_EQ(exchange("STARTTLS\r\n"), "502 5.5.1 STARTTLS not available\r\n");
  EXPECT_TRUE(handler_.calls.empty());
}

class ServerSessionAuthTest : public ServerSessionTest {
 protected:
  ServerSessionAuthTest() {
    tls_ = true;
    policy_.auth_offered = true;
  }
};

TEST_F(ServerSessionAuthTest, PlainWithInitialResponse) {
  start();
  ehlo();
  EXPECT_EQ(exchange("AUTH PLAIN AHVzZXIAcGFzcw==\r\n"), "");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"authenticate:user:pass"});
  EXPECT_EQ(session().phase(), Phase::Waiting);
  EXPECT_EQ(answer("235 2.7.0 Authentication successful\r\n"),
            "235 2.7.0 Authentication successful\r\n");
  // AUTH is no longer advertised, and a second AUTH is refused.
  EXPECT_EQ(exchange("EHLO client.test\r\n"), kEhloPlain);
  EXPECT_EQ(exchange("AUTH PLAIN AHVzZXIAcGFzcw==\r\n"), "503 5.5.1 Already authenticated\r\n");
}

TEST_F(ServerSessionAuthTest, PlainWithContinuation) {
  start();
  ehlo();
  // RFC 4954: continue-req = "334" SP [base64] CRLF.
  EXPECT_EQ(exchange("AUTH PLAIN\r\n"), "334 \r\n");
  EXPECT_EQ(wire_reply("334 \r\n").code, 334) << "our own reply parser accepts it";
  EXPECT_TRUE(handler_.calls.empty());
  EXPECT_EQ(exchange("AHVzZXIAcGFzcw==\r\n"), "");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"authenticate:user:pass"});
}

TEST_F(ServerSessionAuthTest, PlainWithMatchingAuthzid) {
  start();
  ehlo();
  // "user\0user\0pass"
  EXPECT_EQ(exchange("AUTH PLAIN dXNlcgB1c2VyAHBhc3M=\r\n"), "");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"authenticate:user:pass"});
}

TEST_F(ServerSessionAuthTest, PlainWithForeignAuthzidIsRefused) {
  start();
  ehlo();
  // "admin\0user\0pass"
  EXPECT_EQ(exchange("AUTH PLAIN YWRtaW4AdXNlcgBwYXNz\r\n"),
            "535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_TRUE(handler_.calls.empty());
}

TEST_F(ServerSessionAuthTest, MalformedPlainResponses) {
  start();
  ehlo();
  EXPECT_EQ(exchange("AUTH PLAIN not*base64\r\n"), "501 5.5.2 Invalid base64 data\r\n");
  // "userpass" without NULs
  EXPECT_EQ(exchange("AUTH PLAIN dXNlcnBhc3M=\r\n"), "501 5.5.2 Malformed AUTH PLAIN response\r\n");
  EXPECT_EQ(exchange("AUTH PLAIN\r\n*\r\n"), "334 \r\n501 5.0.0 Authentication cancelled\r\n");
  EXPECT_EQ(exchange("AUTH CRAM-MD5\r\n"), "504 5.5.4 Unrecognized authentication mechanism\r\n");
  EXPECT_TRUE(handler_.calls.empty());
}

TEST_F(ServerSessionAuthTest, NulInAuthResponseLineCancelsTheExchange) {
  start();
  ehlo();
  EXPECT_EQ(exchange("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
  EXPECT_EQ(exchange(std::string("dXNl\0cg==\r\n", 11)),
            "500 5.5.2 Syntax error: NUL octet in command\r\n");
  // The next line is a command again, not the user name.
  EXPECT_EQ(exchange("NOOP\r\n"), kOk);
  EXPECT_TRUE(handler_.calls.empty());
}

TEST_F(ServerSessionAuthTest, LoginFlowPipelinedOrNot) {
  start();
  ehlo();
  EXPECT_EQ(exchange("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
  EXPECT_EQ(exchange("dXNlcg==\r\n"), "334 UGFzc3dvcmQ6\r\n");
  EXPECT_TRUE(handler_.calls.empty());
  EXPECT_EQ(exchange("cGFzcw==\r\n"), "");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"authenticate:user:pass"});
  EXPECT_EQ(answer("535 5.7.8 Authentication credentials invalid\r\n"),
            "535 5.7.8 Authentication credentials invalid\r\n");
  // Failed: may try again, this time everything in one write and with an initial response.
  EXPECT_EQ(exchange("AUTH LOGIN dXNlcg==\r\ncGFzcw==\r\n"), "334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"authenticate:user:pass"});
}

TEST_F(ServerSessionAuthTest, ThirdFailedAuthClosesWith421) {
  policy_.max_auth_failures = 3;
  start();
  ehlo();
  const std::string refused = "535 5.7.8 Authentication credentials invalid\r\n";
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(exchange("AUTH PLAIN AHVzZXIAd3Jvbmc=\r\n"), "");
    EXPECT_EQ(answer(refused), refused);
    EXPECT_FALSE(session().closed());
  }
  // A 454 (verifier busy) is not the client's fault and does not count.
  EXPECT_EQ(exchange("AUTH PLAIN AHVzZXIAd3Jvbmc=\r\n"), "");
  EXPECT_EQ(answer("454 4.7.0 Temporary authentication failure\r\n"),
            "454 4.7.0 Temporary authentication failure\r\n");
  EXPECT_FALSE(session().closed());
  // A foreign authzid is refused locally and counts like a wrong password.
  EXPECT_EQ(exchange("AUTH PLAIN YWRtaW4AdXNlcgBwYXNz\r\nNOOP\r\n"),
            refused + "421 4.7.0 mx.test Too many authentication failures, closing\r\n");
  EXPECT_TRUE(session().closed());
  EXPECT_TRUE(handler_.closed());
}

TEST_F(ServerSessionAuthTest, FailedAuthCountsTowardMaxErrors) {
  policy_.max_errors = 2;
  start();
  ehlo();
  EXPECT_EQ(exchange("FROB\r\n"), "500 5.5.2 Command not recognized\r\n");
  EXPECT_EQ(exchange("AUTH PLAIN AHVzZXIAd3Jvbmc=\r\n"), "");
  EXPECT_EQ(answer("535 5.7.8 Authentication credentials invalid\r\n"),
            "535 5.7.8 Authentication credentials invalid\r\n"
            "421 4.7.0 mx.test Too many errors, closing\r\n");
  EXPECT_TRUE(session().closed());
}

TEST_F(ServerSessionAuthTest, AuthRequiredBlocksMailUntil235) {
  policy_.auth_required = true;
  start();
  ehlo();
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test>\r\n"), "530 5.7.0 Authentication required\r\n");
  exchange("AUTH PLAIN AHVzZXIAcGFzcw==\r\n");
  answer("535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test>\r\n"), "530 5.7.0 Authentication required\r\n");
  exchange("AUTH PLAIN AHVzZXIAcGFzcw==\r\n");
  answer("235 2.7.0 Authentication successful\r\n");
  handler_.take_calls();
  EXPECT_EQ(exchange("MAIL FROM:<a@b.test> AUTH=<>\r\n"), "");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"mail_from:a@b.test"});
}

TEST_F(ServerSessionTest, AuthBeforeTlsIs538) {
  policy_.starttls_offered = true;
  policy_.auth_offered = true;
  start();
  ehlo();
  EXPECT_EQ(exchange("AUTH PLAIN AHVzZXIAcGFzcw==\r\n"),
            "538 5.7.11 Encryption required for AUTH\r\n");
  EXPECT_TRUE(handler_.calls.empty());
}

TEST_F(ServerSessionTest, AuthNotOfferedIs502) {
  tls_ = true;
  start();
  ehlo();
  EXPECT_EQ(exchange("AUTH PLAIN AHVzZXIAcGFzcw==\r\n"), "502 5.5.1 AUTH not available\r\n");
}

TEST_F(ServerSessionTest, AuthAfterStarttlsWorks) {
  policy_.starttls_offered = true;
  policy_.auth_offered = true;
  policy_.auth_required = true;
  start();
  ehlo();
  exchange("STARTTLS\r\n");
  session().tls_started();
  handler_.take_calls();
  EXPECT_EQ(exchange("EHLO client.test\r\n"),
            "250-mx.test\r\n"
            "250-PIPELINING\r\n"
            "250-SIZE 1000\r\n"
            "250-8BITMIME\r\n"
            "250-ENHANCEDSTATUSCODES\r\n"
            "250-AUTH PLAIN LOGIN\r\n"
            "250 HELP\r\n");
  EXPECT_EQ(exchange("AUTH PLAIN AHVzZXIAcGFzcw==\r\n"), "");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"authenticate:user:pass"});
}

TEST_F(ServerSessionTest, TimeoutIs421AndClose) {
  start();
  open_transaction();
  session().on_timeout();
  EXPECT_EQ(handler_.take_sent(), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
  EXPECT_EQ(handler_.take_calls(), (std::vector<std::string>{"reset", "close"}));
  EXPECT_TRUE(session().closed());
  // A late answer to nothing changes nothing.
  EXPECT_EQ(answer("250 2.0.0 Ok\r\n"), "");
}

TEST_F(ServerSessionTest, ShutdownWhenIdleClosesNow) {
  start();
  ehlo();
  session().shutdown();
  EXPECT_EQ(handler_.take_sent(), "421 4.3.2 mx.test Service shutting down\r\n");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"close"});
  EXPECT_TRUE(session().closed());
}

TEST_F(ServerSessionTest, ShutdownDuringDataWaitsForTheTransaction) {
  start();
  enter_data();
  session().shutdown();
  EXPECT_EQ(handler_.take_sent(), "");
  EXPECT_TRUE(handler_.calls.empty());
  EXPECT_FALSE(session().closed());
  EXPECT_EQ(exchange("body\r\n.\r\nMAIL FROM:<x@y.test>\r\n"), "");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"data_end"});
  EXPECT_EQ(answer("250 2.0.0 queued\r\n"),
            "250 2.0.0 queued\r\n421 4.3.2 mx.test Service shutting down\r\n");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"close"});
  EXPECT_TRUE(session().closed());
}

TEST_F(ServerSessionTest, ShutdownWithOpenTransactionStillRefusesNewMail) {
  start();
  open_transaction();
  session().shutdown();
  EXPECT_EQ(handler_.take_sent(), "");
  EXPECT_EQ(exchange("RSET\r\n"), std::string(kOk) + "421 4.3.2 mx.test Service shutting down\r\n");
  EXPECT_EQ(handler_.take_calls(), (std::vector<std::string>{"reset", "close"}));
}

TEST_F(ServerSessionTest, RefuseIs554AndClose) {
  start();
  session().refuse("Access denied");
  EXPECT_EQ(handler_.take_sent(), "554 5.7.1 mx.test Access denied\r\n");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"close"});
  EXPECT_EQ(exchange("EHLO client.test\r\n"), "");
}

TEST_F(ServerSessionTest, SynchronousCompletionFromInsideTheHandler) {
  handler_.auto_mail = wire_reply("250 2.1.0 Ok\r\n");
  handler_.auto_rcpt = wire_reply("250 2.1.5 Ok\r\n");
  handler_.auto_data_end = wire_reply("250 2.0.0 queued\r\n");
  start();
  EXPECT_EQ(exchange("EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n"
                     "RCPT TO:<e@d.test>\r\nDATA\r\n..x\r\n.\r\nNOOP\r\nQUIT\r\n"),
            std::string(kEhloPlain) + "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n" + kDataGo +
                "250 2.0.0 queued\r\n" + kOk + "221 2.0.0 Bye\r\n");
  EXPECT_EQ(handler_.take_calls(),
            (std::vector<std::string>{"mail_from:a@b.test", "rcpt_to:c@d.test", "rcpt_to:e@d.test",
                                      "data_begin", "data_end", "close"}));
  EXPECT_EQ(handler_.content, ".x\r\n");
}

TEST_F(ServerSessionTest, UpstreamClosing421IsRelayedOnceAndCloses) {
  start();
  ehlo();
  exchange("MAIL FROM:<a@b.test>\r\n");
  handler_.take_calls();
  // One command, one reply: the 421 from upstream is the reply and the goodbye.
  EXPECT_EQ(answer("421 4.4.1 Upstream unreachable\r\n"), "421 4.4.1 Upstream unreachable\r\n");
  EXPECT_EQ(handler_.take_calls(), std::vector<std::string>{"close"});
  EXPECT_TRUE(session().closed());
}

TEST_F(ServerSessionTest, UnsolicitedCompleteIsIgnored) {
  start();
  ehlo();
  EXPECT_EQ(answer("250 2.0.0 Ok\r\n"), "");
  EXPECT_EQ(exchange("RCPT TO:<c@d.test>\r\n"), "503 5.5.1 Need MAIL command first\r\n");
}

}  // namespace
}  // namespace portrelay::smtp
