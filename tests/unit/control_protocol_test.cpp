// The control socket's line protocol: what `portrelay queue` makes of every answer a daemon
// (or something posing as one) can give, including none.
#include "portrelay/spool/control_protocol.hpp"

#include <gtest/gtest.h>

namespace {

using portrelay::spool::ControlAnswer;
using portrelay::spool::parse_control_answer;
using portrelay::spool::parse_control_request;

TEST(ControlProtocol, RequestSplitsAtTheFirstSpace) {
  auto request = parse_control_request("retry all\r\n");
  EXPECT_EQ(request.verb, "retry");
  EXPECT_EQ(request.argument, "all");
  request = parse_control_request("delete");
  EXPECT_EQ(request.verb, "delete");
  EXPECT_EQ(request.argument, "");
}

TEST(ControlProtocol, EveryShortOrStrangeAnswerIsMalformedNotACrash) {
  EXPECT_EQ(parse_control_answer("ok 3 message(s) due now\n").kind, ControlAnswer::Kind::Ok);
  EXPECT_EQ(parse_control_answer("ok 3 message(s) due now\n").text, "3 message(s) due now");
  EXPECT_EQ(parse_control_answer("error no message X").kind, ControlAnswer::Kind::Error);
  EXPECT_EQ(parse_control_answer("error no message X").text, "no message X");
  // The daemon closed the connection without a word, or sent a fragment.
  for (const char* answer : {"", "\n", "o", "ok", "err", "error", "hello\x01\n", "ok\nerror x"}) {
    const auto parsed = parse_control_answer(answer);
    EXPECT_EQ(parsed.kind, ControlAnswer::Kind::Malformed) << answer;
    for (char c : parsed.text) EXPECT_GE(c, 0x20) << answer;
  }
}

}  // namespace
