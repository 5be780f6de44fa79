// relay::Transaction and classify(), reply by reply: every stage against every reply class
// and a broken connection, replay on the next endpoint, per-recipient outcomes, and the
// rule that the client never hears 2xx for a message no upstream accepted.
#include "portrelay/relay/transaction.hpp"

#include <gtest/gtest.h>

#include <random>

namespace portrelay::relay {
namespace {

// A reply as the parser makes it from the wire (enhanced code split off).
smtp::Reply reply(int code, const std::string& text = "text") {
  smtp::ReplyParser parser;
  parser.feed(std::to_string(code) + " " + text + "\r\n");
  auto parsed = parser.next();  // the parser takes 2xx-5xx only; 1xx never reaches us
  EXPECT_TRUE(parsed.has_value()) << code;
  return parsed.value_or(smtp::Reply{});
}
UpstreamResponse said(int code, const std::string& text = "text") { return reply(code, text); }
UpstreamResponse broke(FailureReason reason = FailureReason::TransactionReset) {
  return AttemptFailure{reason, "connection closed by upstream"};
}

ReadyEndpoint endpoint(std::size_t index, bool reused = false, bool eight_bit = true) {
  return ReadyEndpoint{index, "up" + std::to_string(index) + ":25", eight_bit, true, reused};
}
SelectionReport ready(std::size_t index, bool reused = false, bool eight_bit = true) {
  return SelectionReport{endpoint(index, reused, eight_bit), {}};
}
SelectionReport none(std::vector<FailedEndpoint> failures = {}) {
  return SelectionReport{std::nullopt, std::move(failures)};
}

smtp::PathArgument sender(const std::string& address, const std::string& body = "") {
  smtp::PathArgument path;
  path.address = address;
  if (!body.empty()) path.parameters.push_back({"BODY", body});
  return path;
}

std::vector<std::string> text(const std::vector<Action>& actions) {
  std::vector<std::string> out;
  for (const auto& action : actions) out.push_back(to_string(action));
  return out;
}
using Lines = std::vector<std::string>;

// ---- classify: stage x reply class -------------------------------------------------------

struct ClassifyCase {
  Stage stage;
  int code;  // 0: broken connection
  Verdict expected;
};

TEST(Classify, EveryStageAgainstEveryReplyClass) {
  const std::vector<ClassifyCase> cases = {
      {Stage::Greeting, 220, Verdict::Accept},
      {Stage::Greeting, 0, Verdict::NextEndpoint},
      {Stage::Greeting, 421, Verdict::NextEndpoint},
      {Stage::Greeting, 450, Verdict::NextEndpoint},
      {Stage::Greeting, 554, Verdict::NextEndpoint},
      {Stage::Greeting, 250, Verdict::NextEndpoint},
      {Stage::Ehlo, 250, Verdict::Accept},
      {Stage::Ehlo, 0, Verdict::NextEndpoint},
      {Stage::Ehlo, 421, Verdict::NextEndpoint},
      {Stage::Ehlo, 451, Verdict::NextEndpoint},
      {Stage::Ehlo, 502, Verdict::NextEndpoint},
      {Stage::Mail, 250, Verdict::Accept},
      {Stage::Mail, 0, Verdict::NextEndpoint},
      {Stage::Mail, 421, Verdict::NextEndpoint},
      {Stage::Mail, 451, Verdict::NextEndpoint},
      {Stage::Mail, 550, Verdict::PermanentRefusal},
      {Stage::Mail, 354, Verdict::NextEndpoint},
      {Stage::Rcpt, 250, Verdict::Accept},
      {Stage::Rcpt, 251, Verdict::Accept},
      {Stage::Rcpt, 0, Verdict::NextEndpoint},
      {Stage::Rcpt, 421, Verdict::NextEndpoint},
      {Stage::Rcpt, 450, Verdict::TransientRefusal},
      {Stage::Rcpt, 452, Verdict::TransientRefusal},
      {Stage::Rcpt, 550, Verdict::PermanentRefusal},
      {Stage::Rcpt, 354, Verdict::NextEndpoint},
      {Stage::Data, 354, Verdict::Accept},
      {Stage::Data, 0, Verdict::NextEndpoint},
      {Stage::Data, 250, Verdict::NextEndpoint},  // out of protocol: not a go-ahead
      {Stage::Data, 421, Verdict::NextEndpoint},
      {Stage::Data, 451, Verdict::NextEndpoint},
      {Stage::Data, 554, Verdict::PermanentRefusal},
      {Stage::EndOfData, 250, Verdict::Accept},
      {Stage::EndOfData, 0, Verdict::NextEndpoint},
      {Stage::EndOfData, 354, Verdict::NextEndpoint},
      {Stage::EndOfData, 421, Verdict::NextEndpoint},
      {Stage::EndOfData, 452, Verdict::NextEndpoint},
      {Stage::EndOfData, 554, Verdict::PermanentRefusal},
  };
  for (const auto& c : cases) {
    UpstreamResponse response = c.code == 0 ? broke() : said(c.code);
    EXPECT_EQ(classify(c.stage, response), c.expected)
        << to_string(c.stage) << " " << c.code << " gave "
        << to_string(classify(c.stage, response));
  }
}

TEST(Classify, WhatCountsAgainstTheEndpointsHealth) {
  // Broken, timed out, 421, out of protocol: yes. An ordinary 4xx or a 5xx: no.
  EXPECT_TRUE(counts_against_health(broke(FailureReason::TransactionTimeout), false));
  EXPECT_TRUE(counts_against_health(broke(FailureReason::TransactionTimeout), true));
  EXPECT_TRUE(counts_against_health(broke(FailureReason::TransactionReset), false));
  EXPECT_TRUE(counts_against_health(broke(FailureReason::Protocol), false));
  EXPECT_TRUE(counts_against_health(said(421), false));
  EXPECT_TRUE(counts_against_health(said(354), false));
  EXPECT_TRUE(counts_against_health(said(250), false));  // 250 to DATA
  EXPECT_FALSE(counts_against_health(said(451), false));
  EXPECT_FALSE(counts_against_health(said(452), false));
  // A pooled connection closed under us went stale while idle: not the endpoint's fault.
  EXPECT_FALSE(counts_against_health(broke(FailureReason::TransactionReset), true));
  EXPECT_FALSE(counts_against_health(said(421), true));

  EXPECT_EQ(transaction_failure_reason(broke(FailureReason::TransactionTimeout)),
            FailureReason::TransactionTimeout);
  EXPECT_EQ(transaction_failure_reason(broke(FailureReason::Closed)),
            FailureReason::TransactionReset);
  EXPECT_EQ(transaction_failure_reason(said(421)), FailureReason::TransactionReset);
  EXPECT_EQ(transaction_failure_reason(broke(FailureReason::Protocol)),
            FailureReason::TransactionProtocol);
  EXPECT_EQ(transaction_failure_reason(said(354)), FailureReason::TransactionProtocol);
}

// ---- the transaction, action by action -----------------------------------------------------

// MAIL and one recipient (b@x) accepted on endpoint 0: the client may send DATA now.
void open_until_data(Transaction& t) {
  t.mail();
  t.selected(ready(0));
  t.response(said(250));
  t.rcpt("b@x");
  t.response(said(250));
}

TEST(Transaction, RelaysOneMessageOnTheFirstEndpoint) {
  Transaction t(sender("a@x"), std::nullopt);
  EXPECT_EQ(text(t.mail()), Lines({"select"}));
  EXPECT_EQ(text(t.selected(ready(0))), Lines({"send MAIL FROM:<a@x>"}));
  EXPECT_EQ(text(t.response(said(250, "2.1.0 Ok"))), Lines({"reply 250 2.1.0 Ok"}));
  EXPECT_EQ(text(t.rcpt("b@x")), Lines({"send RCPT TO:<b@x>"}));
  EXPECT_EQ(text(t.response(said(250, "Ok"))), Lines({"reply 250 2.1.5 Ok"}));
  EXPECT_EQ(text(t.end_of_data(true)), Lines({"send DATA"}));
  EXPECT_EQ(text(t.response(said(354))), Lines({"stream body"}));
  EXPECT_EQ(text(t.response(said(250, "2.0.0 queued as 7"))),
            Lines({"delivered up0:25", "release",
                   "reply 250 2.0.0 Ok: relayed via up0:25: queued as 7 [relayed]"}));
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(t.recipients(), std::vector<std::string>({"b@x"}));
}

TEST(Transaction, UsesTheConnectionTheSessionHolds) {
  Transaction t(sender("a@x"), endpoint(1, true));
  EXPECT_EQ(text(t.mail()), Lines({"send MAIL FROM:<a@x>"}));
}

TEST(Transaction, MailParametersFollowTheUpstreamsCapabilities) {
  auto path = sender("a@x", "8BITMIME");
  path.parameters.push_back({"SIZE", "1234"});
  Transaction t(path, std::nullopt);
  t.mail();
  EXPECT_EQ(text(t.selected(ready(0))), Lines({"send MAIL FROM:<a@x> BODY=8BITMIME SIZE=1234"}));
}

TEST(Transaction, MailStageEveryReplyClass) {
  struct Case {
    UpstreamResponse response;
    Lines expected;
  };
  const std::vector<Case> cases = {
      {said(250, "Ok"), {"reply 250 2.1.0 Ok"}},
      {said(550, "No such sender"), {"reply 550 5.1.0 No such sender"}},
      {said(451, "Try later"),
       {"discard", "failed up0:25 at MAIL (transaction_protocol: 451 Try later)", "select"}},
      {said(421, "Bye"),
       {"discard", "failed up0:25 at MAIL (transaction_reset: 421 Bye) health", "select"}},
      {said(354, "Odd"),
       {"discard", "failed up0:25 at MAIL (transaction_protocol: 354 Odd) health", "select"}},
      {broke(FailureReason::TransactionTimeout),
       {"discard",
        "failed up0:25 at MAIL (transaction_timeout: connection closed by upstream) health",
        "select"}},
  };
  for (const auto& c : cases) {
    Transaction t(sender("a@x"), std::nullopt);
    t.mail();
    t.selected(ready(0));
    EXPECT_EQ(text(t.response(c.response)), c.expected);
  }
}

TEST(Transaction, RcptStageEveryReplyClassAndPerRecipientOutcomes) {
  Transaction t(sender("a@x"), std::nullopt);
  t.mail();
  t.selected(ready(0));
  t.response(said(250));
  t.rcpt("ok@x");
  EXPECT_EQ(text(t.response(said(250, "Ok"))), Lines({"reply 250 2.1.5 Ok"}));
  t.rcpt("full@x");
  EXPECT_EQ(text(t.response(said(452, "4.2.2 Mailbox full"))),
            Lines({"reply 452 4.2.2 Mailbox full"}));
  t.rcpt("nobody@x");
  EXPECT_EQ(text(t.response(said(550, "No such user"))), Lines({"reply 550 5.1.1 No such user"}));
  t.rcpt("ok2@x");
  EXPECT_EQ(text(t.response(said(251, "Forwarded"))), Lines({"reply 251 2.1.5 Forwarded"}));

  ASSERT_EQ(t.recipient_outcomes().size(), 4u);
  EXPECT_EQ(t.recipient_outcomes()[0].verdict, Verdict::Accept);
  EXPECT_EQ(t.recipient_outcomes()[1].verdict, Verdict::TransientRefusal);
  EXPECT_EQ(t.recipient_outcomes()[1].address, "full@x");
  EXPECT_EQ(t.recipient_outcomes()[2].verdict, Verdict::PermanentRefusal);
  EXPECT_EQ(t.recipient_outcomes()[3].verdict, Verdict::Accept);
  // Only accepted recipients are part of the envelope that is replayed and delivered.
  EXPECT_EQ(t.recipients(), std::vector<std::string>({"ok@x", "ok2@x"}));
}

TEST(Transaction, RcptFailureReplaysTheEnvelopeThenRetriesTheRecipient) {
  Transaction t(sender("a@x"), std::nullopt);
  open_until_data(t);
  t.rcpt("c@x");
  EXPECT_EQ(text(t.response(said(421, "Shutting down"))),
            Lines({"discard", "failed up0:25 at RCPT (transaction_reset: 421 Shutting down) health",
                   "select"}));
  EXPECT_EQ(t.tried(), std::set<std::size_t>({0}));
  EXPECT_EQ(text(t.selected(ready(1))), Lines({"failover 0->1", "send MAIL FROM:<a@x>"}));
  EXPECT_EQ(text(t.response(said(250))), Lines({"send RCPT TO:<b@x>"}));  // replay
  EXPECT_EQ(text(t.response(said(250))), Lines({"send RCPT TO:<c@x>"}));  // the pending one
  EXPECT_EQ(text(t.response(said(250, "Ok"))), Lines({"reply 250 2.1.5 Ok"}));
  EXPECT_EQ(t.recipients(), std::vector<std::string>({"b@x", "c@x"}));
}

TEST(Transaction, ARefusedReplayedRecipientMeansTheEndpointCannotCarryTheMessage) {
  Transaction t(sender("a@x"), std::nullopt);
  open_until_data(t);
  t.end_of_data(true);
  t.response(broke());  // DATA: connection lost
  t.selected(ready(1));
  t.response(said(250));  // MAIL replayed
  EXPECT_EQ(text(t.response(said(550, "Unknown"))),
            Lines({"discard", "failed up1:25 at RCPT (replay) (transaction_protocol: 550 Unknown)",
                   "select"}));
  EXPECT_EQ(t.tried(), std::set<std::size_t>({0, 1}));
  EXPECT_EQ(text(t.selected(none())),
            Lines({"reply 451 4.4.1 No upstream endpoint could take the message, try again later "
                   "(up0:25 (transaction_reset: connection closed by upstream); up1:25 (550 "
                   "Unknown)) [deferred]"}));
}

TEST(Transaction, DataStageEveryReplyClass) {
  struct Case {
    UpstreamResponse response;
    Lines expected;
  };
  const std::vector<Case> cases = {
      {said(354), {"stream body"}},
      {said(554, "5.7.1 Policy"), {"release", "reply 554 5.7.1 Policy [failed]"}},
      {said(451, "Later"),
       {"discard", "failed up0:25 at DATA (transaction_protocol: 451 Later)", "select"}},
      {said(250, "Huh"),
       {"discard", "failed up0:25 at DATA (transaction_protocol: 250 Huh) health", "select"}},
      {broke(),
       {"discard",
        "failed up0:25 at DATA (transaction_reset: connection closed by upstream) health",
        "select"}},
  };
  for (const auto& c : cases) {
    Transaction t(sender("a@x"), std::nullopt);
    open_until_data(t);
    t.end_of_data(true);
    EXPECT_EQ(text(t.response(c.response)), c.expected);
  }
}

TEST(Transaction, EndOfDataEveryReplyClass) {
  struct Case {
    UpstreamResponse response;
    Lines expected;
  };
  const std::vector<Case> cases = {
      {said(250, "Ok id=1"),
       {"delivered up0:25", "release",
        "reply 250 2.0.0 Ok: relayed via up0:25: Ok id=1 [relayed]"}},
      {said(552, "5.3.4 Too big"), {"release", "reply 552 5.3.4 Too big [failed]"}},
      {said(452, "Later"),
       {"discard", "failed up0:25 at end of data (transaction_protocol: 452 Later)", "select"}},
      {said(354, "Again?"),
       {"discard", "failed up0:25 at end of data (transaction_protocol: 354 Again?) health",
        "select"}},
      {broke(FailureReason::TransactionTimeout),
       {"discard",
        "failed up0:25 at end of data (transaction_timeout: connection closed by upstream) "
        "health",
        "select"}},
  };
  for (const auto& c : cases) {
    Transaction t(sender("a@x"), std::nullopt);
    open_until_data(t);
    t.end_of_data(true);
    t.response(said(354));
    EXPECT_EQ(text(t.response(c.response)), c.expected);
  }
}

TEST(Transaction, EndOfDataFailureReplaysEverythingOnTheNextEndpoint) {
  Transaction t(sender("a@x"), std::nullopt);
  open_until_data(t);
  t.end_of_data(true);
  t.response(said(354));
  t.response(broke(FailureReason::TransactionTimeout));
  EXPECT_EQ(text(t.selected(ready(2))), Lines({"failover 0->2", "send MAIL FROM:<a@x>"}));
  EXPECT_EQ(text(t.response(said(250))), Lines({"send RCPT TO:<b@x>"}));
  EXPECT_EQ(text(t.response(said(250))), Lines({"send DATA"}));
  EXPECT_EQ(text(t.response(said(354))), Lines({"stream body"}));
  EXPECT_EQ(text(t.response(said(250, "Ok"))),
            Lines({"delivered up2:25", "release",
                   "reply 250 2.0.0 Ok: relayed via up2:25: Ok [relayed]"}));
}

TEST(Transaction, NothingReachableAnswersEachPendingRequest) {
  // At MAIL: the message is deferred.
  Transaction at_mail(sender("a@x"), std::nullopt);
  at_mail.mail();
  EXPECT_EQ(text(at_mail.selected(none({{0, "up0:25", {FailureReason::Refused, "refused"}},
                                        {1, "up1:587", {FailureReason::Timeout, "timeout"}}}))),
            Lines({"reply 451 4.4.1 No upstream endpoint could take the message, try again later "
                   "(up0:25 refused; up1:587 timeout) [deferred]"}));
  EXPECT_EQ(at_mail.tried(), std::set<std::size_t>({0, 1}));

  // The last upstream 4xx is the answer when there was one.
  Transaction with_4xx(sender("a@x"), std::nullopt);
  with_4xx.mail();
  with_4xx.selected(ready(0));
  with_4xx.response(said(451, "4.7.1 Slow down"));
  EXPECT_EQ(text(with_4xx.selected(none())), Lines({"reply 451 4.7.1 Slow down [deferred]"}));
}

// The selector gave up because every endpoint was cooling down: the 451 says so. Once one
// endpoint really failed in that selection, it is the ordinary text.
TEST(Transaction, ChainCoolingDownSaysSoInThe451) {
  const AttemptFailure cooling{FailureReason::CoolingDown, "cooling down after recent failures"};
  Transaction all_cooling(sender("a@x"), std::nullopt);
  all_cooling.mail();
  EXPECT_EQ(text(all_cooling.selected(none({{0, "up0:25", cooling}, {1, "up1:587", cooling}}))),
            Lines({"reply 451 4.4.1 Every upstream endpoint is cooling down after recent "
                   "failures, try again later (up0:25 cooling_down; up1:587 cooling_down) "
                   "[deferred]"}));

  Transaction mixed(sender("a@x"), std::nullopt);
  mixed.mail();
  EXPECT_EQ(text(mixed.selected(none(
                {{0, "up0:25", {FailureReason::Refused, "refused"}}, {1, "up1:587", cooling}}))),
            Lines({"reply 451 4.4.1 No upstream endpoint could take the message, try again later "
                   "(up0:25 refused; up1:587 cooling_down) [deferred]"}));
}

TEST(Transaction, BodyNotStoredLocallyIsA451AndNothingIsSent) {
  Transaction t(sender("a@x"), std::nullopt);
  open_until_data(t);
  EXPECT_EQ(text(t.end_of_data(false)),
            Lines({"release",
                   "reply 451 4.3.0 Local error storing the message, try again later [deferred]"}));
}

TEST(Transaction, EightBitContentSkipsEndpointsWithout8BitMime) {
  Transaction t(sender("a@x", "8BITMIME"), std::nullopt);
  t.mail();
  EXPECT_EQ(text(t.selected(ready(0, false, false))), Lines({"release", "select"}));
  EXPECT_EQ(text(t.selected(none())),
            Lines({"reply 554 5.6.3 No upstream endpoint accepts 8-bit content (8BITMIME), and "
                   "portrelay does not convert messages [deferred]"}));
}

// #18 item 3: an endpoint whose EHLO SIZE is below the message is skipped for it.
ReadyEndpoint sized(std::size_t index, std::uint64_t size_limit) {
  ReadyEndpoint ready = endpoint(index);
  ready.size_limit = size_limit;
  return ready;
}
smtp::PathArgument sender_with_size(const std::string& address, const std::string& size) {
  smtp::PathArgument path = sender(address);
  path.parameters.push_back({"SIZE", size});
  return path;
}

TEST(Transaction, ADeclaredSizeSkipsAnEndpointWhoseSizeIsSmaller) {
  Transaction t(sender_with_size("a@x", "5000"), std::nullopt);
  EXPECT_EQ(t.message_size(), std::optional<std::uint64_t>(5000));
  t.mail();
  EXPECT_EQ(text(t.selected(SelectionReport{sized(0, 4000), {}})), Lines({"release", "select"}));
  EXPECT_EQ(t.tried(), std::set<std::size_t>({0}));
  EXPECT_EQ(text(t.selected(SelectionReport{sized(1, 0), {}})),
            Lines({"send MAIL FROM:<a@x> SIZE=5000"}));
}

TEST(Transaction, ABodyLargerThanTheHeldEndpointsSizeMovesToTheNextWithTheEnvelope) {
  // No SIZE= from the client: MAIL and RCPT went to an endpoint that turns out too small.
  Transaction t(sender("a@x"), std::nullopt);
  t.mail();
  t.selected(SelectionReport{sized(0, 1000), {}});
  t.response(said(250));
  t.rcpt("b@x");
  t.response(said(250));
  EXPECT_EQ(text(t.end_of_data(true, 1001)), Lines({"release", "select"}));
  EXPECT_EQ(text(t.selected(SelectionReport{sized(1, 2000), {}})), Lines({"send MAIL FROM:<a@x>"}));
  EXPECT_EQ(text(t.response(said(250))), Lines({"send RCPT TO:<b@x>"}));
  EXPECT_EQ(text(t.response(said(250))), Lines({"send DATA"}));
}

TEST(Transaction, ABodyWithinTheSizeIsSentThere) {
  Transaction t(sender("a@x"), std::nullopt);
  t.mail();
  t.selected(SelectionReport{sized(0, 1000), {}});
  t.response(said(250));
  t.rcpt("b@x");
  t.response(said(250));
  EXPECT_EQ(text(t.end_of_data(true, 1000)), Lines({"send DATA"}));
}

TEST(Transaction, AMessageTooBigForEveryEndpointIsRefusedFor552) {
  Transaction t(sender("a@x"), std::nullopt, /*message_size=*/30000);
  t.skip_for_size(0, "up0:25", 10000);
  t.skip_for_size(1, "up1:587", 20000);
  t.mail();
  EXPECT_EQ(text(t.selected(none())),
            Lines({"reply 552 5.3.4 Message size exceeds what every upstream endpoint accepts "
                   "(30000 octets; the largest takes 20000) [failed]"}));
}

TEST(Transaction, ASizeSkipBesideAnEndpointDownIsStillTransient) {
  Transaction t(sender("a@x"), std::nullopt, /*message_size=*/30000);
  t.skip_for_size(0, "up0:25", 10000);
  t.mail();
  const auto actions =
      text(t.selected(none({{1, "up1:587", {FailureReason::Refused, "refused"}}})));
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].rfind("reply 451 4.4.1", 0), 0u) << actions[0];
  EXPECT_NE(actions[0].find("[deferred]"), std::string::npos) << actions[0];
}

TEST(Transaction, APooledConnectionThatWentStaleDoesNotExcludeItsEndpoint) {
  Transaction t(sender("a@x"), std::nullopt);
  t.mail();
  t.selected(ready(0, /*reused=*/true));
  EXPECT_EQ(
      text(t.response(broke())),
      Lines({"discard", "failed up0:25 at MAIL (transaction_reset: connection closed by upstream)",
             "select"}));
  EXPECT_TRUE(t.tried().empty());
}

TEST(Transaction, RepliesNobodyAskedForAreIgnored) {
  Transaction t(sender("a@x"), std::nullopt);
  EXPECT_TRUE(t.response(said(250)).empty());
  t.mail();
  EXPECT_TRUE(t.response(said(250)).empty());  // still selecting
}

// ---- the rule: no 2xx after end of data unless an upstream said 2xx to the final dot -------

TEST(Transaction, NeverAcknowledgesWhatNoUpstreamAccepted) {
  // Random walks through the transaction with every kind of answer; whenever the client is
  // told 2xx for the message, the last thing the upstream said must be a 2xx to the final
  // dot. Deterministic seed: failures reproduce.
  std::mt19937 random(20261129);
  const std::vector<int> codes = {0, 220, 250, 251, 354, 421, 450, 451, 452, 500, 550, 554};
  int acknowledged = 0;
  for (int walk = 0; walk < 5000; ++walk) {
    Transaction t(sender("a@x"), std::nullopt);
    auto actions = t.mail();
    bool body_streamed_on_this_connection = false;
    int rcpts = 0;
    for (int step = 0; step < 40 && !t.finished(); ++step) {
      bool selecting = !actions.empty() && actions.back().kind == Action::Kind::Select;
      bool waiting_client = actions.empty() || actions.back().kind == Action::Kind::Reply;
      if (!actions.empty() && actions.back().kind == Action::Kind::StreamBody)
        body_streamed_on_this_connection = true;
      if (selecting) {
        body_streamed_on_this_connection = false;
        actions = random() % 4 == 0 ? t.selected(none()) : t.selected(ready(random() % 3));
        continue;
      }
      if (waiting_client) {
        if (!t.connection() && t.recipients().empty() && rcpts == 0 && random() % 2) break;
        actions = (rcpts < 2 && random() % 2) ? (++rcpts, t.rcpt("r@x")) : t.end_of_data(true);
        continue;
      }
      int code = codes[random() % codes.size()];
      UpstreamResponse response = code == 0 ? broke() : said(code);
      bool final_dot_2xx = body_streamed_on_this_connection && code >= 200 && code < 300;
      actions = t.response(response);
      for (const auto& action : actions) {
        if (action.kind != Action::Kind::Reply || !action.outcome) continue;
        if (action.reply.code >= 200 && action.reply.code < 300) {
          ++acknowledged;
          EXPECT_TRUE(final_dot_2xx) << "2xx to the client after upstream " << code;
          EXPECT_EQ(*action.outcome, Outcome::Relayed);
        }
      }
      if (!actions.empty() && actions.front().kind == Action::Kind::Discard)
        body_streamed_on_this_connection = false;
    }
  }
  EXPECT_GT(acknowledged, 30);  // the walk did reach real deliveries
}

}  // namespace
}  // namespace portrelay::relay

// ---- throttling and quota replies (issue #18) ----------------------------------------------

namespace portrelay::relay {
namespace {

const config::UpstreamLimits kRules{};  // the default patterns

TEST(Throttle, RepliesThatMeanSlowDownOrQuota) {
  struct Case {
    int code;
    std::string text;
    std::optional<PauseKind> expected;
  };
  const std::vector<Case> cases = {
      {454, "Throttling failure: Maximum sending rate exceeded.", PauseKind::Throttle},
      {454, "Throttling failure: Daily message quota exceeded.", PauseKind::Quota},
      {432, "4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", PauseKind::Throttle},
      {432, "4.3.2 Concurrent connection limit exceeded", PauseKind::Throttle},
      {451, "4.7.28 Rate limited", PauseKind::Throttle},
      {451, "4.7.0 Temporary server error", PauseKind::Throttle},
      {421, "4.7.0 Too many messages, try again later", PauseKind::Throttle},
      {550, "5.4.5 Daily user sending limit exceeded.", PauseKind::Quota},
      {550, "5.4.5 Daily sending quota exceeded", PauseKind::Quota},
      // Not about the account: an ordinary 4xx, our own shutdown 421, a 5xx refusal.
      {451, "4.3.0 Local error in processing", std::nullopt},
      {421, "4.3.2 Service shutting down", std::nullopt},
      {450, "4.2.1 Mailbox busy", std::nullopt},
      {550, "5.1.1 User unknown", std::nullopt},
      {554, "5.7.1 Too bad", std::nullopt},
      {250, "2.0.0 Too many thanks", std::nullopt},
  };
  for (const auto& c : cases)
    EXPECT_EQ(throttle_kind(reply(c.code, c.text), kRules), c.expected) << c.code << " " << c.text;
  config::UpstreamLimits custom;
  custom.throttle_patterns = {"slow down please"};
  custom.quota_patterns = {};
  EXPECT_EQ(throttle_kind(reply(450, "4.2.0 SLOW DOWN PLEASE"), custom), PauseKind::Throttle);
  EXPECT_EQ(throttle_kind(reply(454, "Throttling failure"), custom), std::nullopt);
}

TEST(Throttle, ClassifiedAtMailDataAndEndOfDataOnlyWithTheUpstreamsRules) {
  const auto throttle = said(454, "Throttling failure: Maximum sending rate exceeded.");
  for (Stage stage : {Stage::Mail, Stage::Data, Stage::EndOfData})
    EXPECT_EQ(classify(stage, throttle, &kRules), Verdict::Throttled) << to_string(stage);
  // RCPT: "452 too many recipients" is about this message; a quota reply is not.
  EXPECT_EQ(classify(Stage::Rcpt, said(452, "4.5.3 Too many recipients"), &kRules),
            Verdict::TransientRefusal);
  EXPECT_EQ(classify(Stage::Rcpt, said(550, "5.4.5 Daily user sending limit exceeded."), &kRules),
            Verdict::Throttled);
  EXPECT_EQ(classify(Stage::Mail, throttle), Verdict::NextEndpoint);  // no rules: as before
  // A quota refusal is never permanent for us.
  EXPECT_EQ(
      classify(Stage::EndOfData, said(550, "5.4.5 Daily user sending limit exceeded"), &kRules),
      Verdict::Throttled);
}

ReadyEndpoint with_rules(std::size_t index) {
  ReadyEndpoint ready = endpoint(index);
  ready.rules = &kRules;
  return ready;
}

TEST(Throttle, PausesTheUpstreamWithoutBlameAndTriesTheNextOne) {
  Transaction t(sender("a@x"), std::nullopt);
  t.mail();
  t.selected(SelectionReport{with_rules(0), {}});
  EXPECT_EQ(text(t.response(said(454, "Throttling failure: Maximum sending rate exceeded."))),
            Lines({"discard", "throttled up0:25 (throttle)", "select"}));
  EXPECT_TRUE(t.throttled());
  EXPECT_EQ(t.tried(), std::set<std::size_t>({0}));
  // Nothing else can take it: the client hears the 454 (a 4xx), and the message is
  // deferred, never failed.
  EXPECT_EQ(text(t.selected(none())),
            Lines({"reply 454 4.4.1 Throttling failure: Maximum sending rate exceeded. "
                   "[deferred]"}));
}

TEST(Throttle, AQuotaRefusalAfterTheDotIsA451NotABounce) {
  Transaction t(sender("a@x"), std::nullopt);
  t.mail();
  t.selected(SelectionReport{with_rules(0), {}});
  t.response(said(250));
  t.rcpt("b@x");
  t.response(said(250));
  t.end_of_data(true);
  t.response(said(354));
  EXPECT_EQ(text(t.response(said(550, "5.4.5 Daily user sending limit exceeded."))),
            Lines({"discard", "throttled up0:25 (quota)", "select"}));
  // The next upstream takes it.
  EXPECT_EQ(text(t.selected(SelectionReport{with_rules(3), {}})),
            Lines({"failover 0->3", "send MAIL FROM:<a@x>"}));
  t.response(said(250));
  t.response(said(250));
  t.response(said(354));
  EXPECT_EQ(text(t.response(said(250, "Ok"))),
            Lines({"delivered up3:25", "release",
                   "reply 250 2.0.0 Ok: relayed via up3:25: Ok [relayed]"}));

  Transaction alone(sender("a@x"), std::nullopt);
  alone.mail();
  alone.selected(SelectionReport{with_rules(0), {}});
  alone.response(said(550, "5.4.5 Daily user sending limit exceeded."));
  EXPECT_EQ(text(alone.selected(none())),
            Lines({"reply 451 4.7.0 Upstream up0:25 is out of quota: Daily user sending limit "
                   "exceeded. [deferred]"}));
}

TEST(Throttle, AnOrdinary4xxIsARefusalForOutlierDetection) {
  Transaction t(sender("a@x"), std::nullopt);
  t.mail();
  t.selected(SelectionReport{with_rules(0), {}});
  auto actions = t.response(said(450, "4.2.1 Mailbox busy"));
  ASSERT_EQ(actions.size(), 3u);
  EXPECT_EQ(actions[1].kind, Action::Kind::EndpointFailed);
  EXPECT_TRUE(actions[1].refusal);
  EXPECT_FALSE(actions[1].health);
}

TEST(Throttle, HeldBackByLimitsEverywhereIsA451_470) {
  Transaction t(sender("a@x"), std::nullopt);
  t.mail();
  const AttemptFailure limited{FailureReason::Limited, "held back by the upstream's limits"};
  EXPECT_EQ(text(t.selected(none({{0, "up0:25", limited}, {1, "up1:587", limited}}))),
            Lines({"reply 451 4.7.0 Every upstream is at its sending limit or paused by its "
                   "provider, try again later [deferred]"}));
  EXPECT_TRUE(t.throttled());
}

}  // namespace
}  // namespace portrelay::relay
