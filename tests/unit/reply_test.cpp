#include "portrelay/smtp/reply.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace portrelay::smtp {
namespace {

std::vector<Reply> drain(ReplyParser& parser) {
  std::vector<Reply> replies;
  while (auto reply = parser.next()) replies.push_back(std::move(*reply));
  return replies;
}

std::vector<Reply> parse_all(std::string_view bytes) {
  ReplyParser parser;
  parser.feed(bytes);
  std::vector<Reply> replies = drain(parser);
  EXPECT_FALSE(parser.failed()) << parser.error();
  return replies;
}

void expect_malformed(std::string_view bytes) {
  SCOPED_TRACE(testing::PrintToString(std::string(bytes)));
  ReplyParser parser;
  parser.feed(bytes);
  EXPECT_EQ(parser.next(), std::nullopt);
  EXPECT_TRUE(parser.failed());
  EXPECT_FALSE(parser.error().empty());
  // The error is sticky.
  parser.feed("250 ok\r\n");
  EXPECT_EQ(parser.next(), std::nullopt);
  EXPECT_TRUE(parser.failed());
}

TEST(ReplyFormat, SingleLine) {
  EXPECT_EQ(format_reply(250, "2.0.0", "Ok"), "250 2.0.0 Ok\r\n");
  EXPECT_EQ(format_reply(354, "", "End data with <CR><LF>.<CR><LF>"),
            "354 End data with <CR><LF>.<CR><LF>\r\n");
  EXPECT_EQ(format_reply(221, "2.0.0", ""), "221 2.0.0\r\n");
  EXPECT_EQ(format_reply(250, "", ""), "250\r\n");
}

TEST(ReplyFormat, NeutralisesLineBreaksInText) {
  EXPECT_EQ(format_reply(550, "5.7.1", "no\r\n250 ok"), "550 5.7.1 no  250 ok\r\n");
}

TEST(ReplyFormat, MultiLine) {
  EXPECT_EQ(format_multiline_reply(250, {"mx.example", "PIPELINING", "SIZE 1000"}),
            "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n");
  EXPECT_EQ(format_multiline_reply(250, {"only"}), "250 only\r\n");
  EXPECT_EQ(format_multiline_reply(250, {"", ""}), "250-\r\n250\r\n");
}

TEST(ReplyFormat, ParsedReplyRoundTrips) {
  const std::string wire = "250-mx.example Hello\r\n250-8BITMIME\r\n250 2.0.0 SMTPUTF8\r\n";
  std::vector<Reply> replies = parse_all(wire);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(format_reply(replies[0]), wire);
  EXPECT_EQ(format_reply(parse_all("354\r\n").at(0)), "354\r\n");
}

TEST(ReplyParser, SingleLineWithEnhancedCode) {
  std::vector<Reply> replies = parse_all("250 2.1.0 Ok: queued as 4F2\r\n");
  ASSERT_EQ(replies.size(), 1u);
  const Reply& r = replies[0];
  EXPECT_EQ(r.code, 250);
  EXPECT_EQ(r.enhanced, "2.1.0");
  EXPECT_EQ(r.lines, std::vector<std::string>{"2.1.0 Ok: queued as 4F2"});
  EXPECT_EQ(r.message(), "Ok: queued as 4F2");
  EXPECT_EQ(r.summary(), "250 2.1.0 Ok: queued as 4F2");
  EXPECT_TRUE(r.positive());
}

TEST(ReplyParser, WithoutEnhancedCode) {
  Reply r = parse_all("220 mx.example ESMTP\r\n").at(0);
  EXPECT_EQ(r.code, 220);
  EXPECT_EQ(r.enhanced, "");
  EXPECT_EQ(r.message(), "mx.example ESMTP");
  EXPECT_EQ(r.summary(), "220 mx.example ESMTP");
}

TEST(ReplyParser, EnhancedCodeDetection) {
  EXPECT_EQ(parse_all("550 5.7.1 denied\r\n").at(0).enhanced, "5.7.1");
  EXPECT_EQ(parse_all("451 4.100.999 x\r\n").at(0).enhanced, "4.100.999");
  EXPECT_EQ(parse_all("250 2.0.0\r\n").at(0).enhanced, "2.0.0");
  EXPECT_EQ(parse_all("250 5.0.0 wrong class\r\n").at(0).enhanced, "");
  EXPECT_EQ(parse_all("250 2.1000.0 x\r\n").at(0).enhanced, "");
  EXPECT_EQ(parse_all("250 2.0.1000 x\r\n").at(0).enhanced, "");
  EXPECT_EQ(parse_all("250 2.0.0x\r\n").at(0).enhanced, "");
  EXPECT_EQ(parse_all("250 2..0 x\r\n").at(0).enhanced, "");
  EXPECT_EQ(parse_all("250 2.0 x\r\n").at(0).enhanced, "");
  // Only the first line counts.
  EXPECT_EQ(parse_all("250-hello\r\n250 2.0.0 x\r\n").at(0).enhanced, "");
}

TEST(ReplyParser, CodeOnlyAndBareLf) {
  Reply code_only = parse_all("354\r\n").at(0);
  EXPECT_EQ(code_only.code, 354);
  EXPECT_EQ(code_only.lines, std::vector<std::string>{""});
  EXPECT_EQ(code_only.summary(), "354");
  Reply lf = parse_all("220 hi\n").at(0);
  EXPECT_EQ(lf.lines, std::vector<std::string>{"hi"});
}

TEST(ReplyParser, PipelinedRepliesInOrder) {
  std::vector<Reply> replies = parse_all("250 2.1.0 a\r\n250 2.1.5 b\r\n354 go\r\n");
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[0].lines.at(0), "2.1.0 a");
  EXPECT_EQ(replies[1].enhanced, "2.1.5");
  EXPECT_EQ(replies[2].code, 354);
}

TEST(ReplyParser, MultiLineSplitAtEveryByte) {
  const std::string wire =
      "250-mx.example greets you\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 STARTTLS\r\n"
      "221 2.0.0 bye\r\n";
  const std::vector<std::string> ehlo_lines = {"mx.example greets you", "PIPELINING", "SIZE 1000",
                                               "STARTTLS"};
  for (std::size_t split = 0; split <= wire.size(); ++split) {
    SCOPED_TRACE(split);
    ReplyParser parser;
    parser.feed(std::string_view(wire).substr(0, split));
    std::vector<Reply> replies = drain(parser);
    parser.feed(std::string_view(wire).substr(split));
    for (Reply& r : drain(parser)) replies.push_back(std::move(r));
    ASSERT_EQ(replies.size(), 2u);
    EXPECT_EQ(replies[0].code, 250);
    EXPECT_EQ(replies[0].lines, ehlo_lines);
    EXPECT_EQ(replies[1].summary(), "221 2.0.0 bye");
    EXPECT_EQ(parser.buffered(), 0u);
  }
  // Byte by byte, asking for a reply after every byte.
  ReplyParser parser;
  std::vector<Reply> replies;
  for (char c : wire) {
    parser.feed(std::string_view(&c, 1));
    for (Reply& r : drain(parser)) replies.push_back(std::move(r));
  }
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].lines, ehlo_lines);
}

TEST(ReplyParser, BufferedCountsBytesNotYetReturned) {
  ReplyParser parser;
  parser.feed("250-a\r\n250 b\r\n220 part");
  EXPECT_EQ(parser.buffered(), 22u);
  ASSERT_TRUE(parser.next().has_value());
  EXPECT_EQ(parser.buffered(), 8u);
  EXPECT_EQ(parser.next(), std::nullopt);
  EXPECT_EQ(parser.buffered(), 8u);
  parser.feed("ial\r\n");
  Reply r = parser.next().value();
  EXPECT_EQ(r.lines.at(0), "partial");
  EXPECT_EQ(parser.buffered(), 0u);
}

TEST(ReplyParser, IncompleteMultiLineStaysBuffered) {
  ReplyParser parser;
  parser.feed("250-a\r\n250-b\r\n");
  EXPECT_EQ(parser.next(), std::nullopt);
  EXPECT_EQ(parser.buffered(), 14u);
  parser.feed("250 c\r\n");
  EXPECT_EQ(parser.next().value().lines, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(ReplyParser, ClearDropsBufferedBytes) {
  ReplyParser parser;
  parser.feed("220 injected\r\n250-half");
  parser.clear();
  EXPECT_EQ(parser.buffered(), 0u);
  EXPECT_EQ(parser.next(), std::nullopt);
  parser.feed("250 real\r\n");
  EXPECT_EQ(parser.next().value().lines.at(0), "real");
  EXPECT_FALSE(parser.failed());
}

TEST(ReplyParser, MalformedReplies) {
  expect_malformed("25 x\r\n");
  expect_malformed("abc x\r\n");
  expect_malformed("2x0 x\r\n");
  expect_malformed("250x\r\n");
  expect_malformed("250_x\r\n");
  expect_malformed("199 informational\r\n");
  expect_malformed("600 x\r\n");
  expect_malformed("099 x\r\n");
  expect_malformed("\r\n");
  expect_malformed(" 250 x\r\n");
  expect_malformed("250-a\r\n251 b\r\n");
  expect_malformed("250-a\r\n550 b\r\n");
  expect_malformed("250 a\rb\r\n");
  expect_malformed(std::string_view("250 a\0b\r\n", 9));
}

TEST(ReplyParser, ErrorAfterGoodReplyKeepsEarlierReply) {
  ReplyParser parser;
  parser.feed("250 ok\r\nbogus\r\n");
  EXPECT_EQ(parser.next().value().code, 250);
  EXPECT_EQ(parser.next(), std::nullopt);
  EXPECT_TRUE(parser.failed());
}

TEST(ReplyParser, LineLengthLimit) {
  const std::string longest = "250 " + std::string(ReplyParser::kMaxLineLength - 4, 'x');
  std::vector<Reply> ok = parse_all(longest + "\r\n");
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].lines.at(0).size(), ReplyParser::kMaxLineLength - 4);

  expect_malformed(longest + "x\r\n");
  expect_malformed(longest + "x\n");

  // An endless line is refused before its end arrives, so the buffer stays bounded.
  ReplyParser parser;
  parser.feed(longest + "\r");
  EXPECT_EQ(parser.next(), std::nullopt);
  EXPECT_FALSE(parser.failed());
  parser.feed("x");
  EXPECT_EQ(parser.next(), std::nullopt);
  EXPECT_TRUE(parser.failed());
}

TEST(ReplyParser, LineCountLimit) {
  std::string wire;
  for (std::size_t i = 1; i < ReplyParser::kMaxLines; ++i) wire += "250-line\r\n";
  std::vector<Reply> ok = parse_all(wire + "250 last\r\n");
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].lines.size(), ReplyParser::kMaxLines);
  expect_malformed(wire + "250-one too many\r\n250 last\r\n");
}

TEST(ReplyParser, ManySmallRepliesByteByByte) {
  // Exercises buffer compaction: memory must not grow with the number of replies.
  ReplyParser parser;
  const std::string one = "250 2.1.5 recipient ok\r\n";
  std::size_t count = 0;
  for (int i = 0; i < 5000; ++i) {
    for (char c : one) {
      parser.feed(std::string_view(&c, 1));
      while (parser.next()) ++count;
    }
  }
  EXPECT_EQ(count, 5000u);
  EXPECT_EQ(parser.buffered(), 0u);
  EXPECT_FALSE(parser.failed());
}

TEST(ReplyParser, SummarySanitisesControlCharacters) {
  Reply r = parse_all("550 bad\x1b[31mred\r\n").at(0);
  EXPECT_EQ(r.summary(), "550 bad?[31mred");
  EXPECT_TRUE(r.permanent());
}

}  // namespace
}  // namespace portrelay::smtp
