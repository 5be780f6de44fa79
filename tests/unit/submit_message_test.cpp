// What `portrelay sendmail` does to a message and its header fields before submitting it.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "portrelay/submit/address_list.hpp"
#include "portrelay/submit/message.hpp"

namespace {

using namespace portrelay::submit;

TEST(AddressList, FormsSeenInToAndCc) {
  EXPECT_EQ(parse_address_list("a@example.test"), std::vector<std::string>{"a@example.test"});
  EXPECT_EQ(parse_address_list("Ann Example <ann@example.test>, bob@example.test (Bob)"),
            (std::vector<std::string>{"ann@example.test", "bob@example.test"}));
  EXPECT_EQ(parse_address_list("\"Doe, John\" <john@example.test>"),
            std::vector<std::string>{"john@example.test"});
  EXPECT_EQ(parse_address_list("team: a@example.test, b@example.test;, c@example.test"),
            (std::vector<std::string>{"a@example.test", "b@example.test", "c@example.test"}));
  EXPECT_TRUE(parse_address_list("undisclosed-recipients:;").empty());
  EXPECT_EQ(parse_address_list(" \t a@example.test,\t b@example.test "),
            (std::vector<std::string>{"a@example.test", "b@example.test"}));
  EXPECT_EQ(parse_address_list("<@relay.test:user@example.test>"),
            std::vector<std::string>{"user@example.test"});
  EXPECT_EQ(parse_address_list("root"), std::vector<std::string>{"root"});
}

TEST(AddressList, QualifyBareNames) {
  EXPECT_EQ(qualify_address("root", "vm1.example.test"), "root@vm1.example.test");
  EXPECT_EQ(qualify_address("a@b.test", "vm1.example.test"), "a@b.test");
  EXPECT_EQ(qualify_address("", "vm1.example.test"), "");
}

ReadMessage read(const std::string& input, bool lone_dot_ends, std::uint64_t max = 1 << 20) {
  std::istringstream in(input);
  return read_message(in, lone_dot_ends, max);
}

TEST(ReadMessage, LineEndsBecomeCrlf) {
  EXPECT_EQ(read("a\nb\r\nc", false).content, "a\r\nb\r\nc\r\n");
  // A progress bar's bare CR would get the message refused whole (bare CR): it becomes a line end.
  EXPECT_EQ(read("10%\r20%\r\n", false).content, "10%\r\n20%\r\n");
  EXPECT_EQ(read("", false).content, "");
}

TEST(ReadMessage, LoneDotEndsOnlyWithoutI) {
  EXPECT_EQ(read("a\n.\nb\n", true).content, "a\r\n");
  EXPECT_EQ(read("a\n.\nb\n", false).content, "a\r\n.\r\nb\r\n");
  EXPECT_EQ(read("a\n..\nb\n", true).content, "a\r\n..\r\nb\r\n");
}

TEST(ReadMessage, EightBitAndSizeLimit) {
  EXPECT_FALSE(read("plain\n", false).eight_bit);
  EXPECT_TRUE(read("caf\xc3\xa9\n", false).eight_bit);
  EXPECT_TRUE(read(std::string(100, 'x') + "\n", false, 50).too_big);
  EXPECT_FALSE(read(std::string(40, 'x') + "\n", false, 50).too_big);
}

TEST(Message, HeaderFieldsUnfoldedRemovedAndAdded) {
  auto message = Message::parse(
      "To: a@example.test,\r\n b@example.test\r\nBcc: secret@example.test\r\nSubject: "
      "hi\r\n\r\nbody\r\n");
  EXPECT_EQ(message.field_values("to"),
            std::vector<std::string>{" a@example.test, b@example.test"});
  message.remove_fields("BCC");
  message.add_field("Date", "Tue, 1 Jul 2025 12:00:00 +0000");
  EXPECT_EQ(message.render(),
            "To: a@example.test,\r\n b@example.test\r\nSubject: hi\r\n"
            "Date: Tue, 1 Jul 2025 12:00:00 +0000\r\n\r\nbody\r\n");
}

TEST(Message, TextWithoutHeadersIsAllBody) {
  auto message = Message::parse("just text\r\nmore\r\n");
  EXPECT_FALSE(message.has_field("just text"));
  message.add_field("From", "<a@b>");
  EXPECT_EQ(message.render(), "From: <a@b>\r\n\r\njust text\r\nmore\r\n");
  // Fields then a body line without the empty line: the empty line is put in.
  EXPECT_EQ(Message::parse("Subject: x\r\nhello world\r\n").render(),
            "Subject: x\r\n\r\nhello world\r\n");
}

TEST(Message, LongLinesAreBrokenAt998Octets) {
  const std::string long_body(2000, 'b');
  auto rendered =
      Message::parse("Subject: " + std::string(1500, 's') + "\r\n\r\n" + long_body + "\r\n")
          .render();
  std::size_t start = 0;
  while (start < rendered.size()) {
    const auto end = rendered.find("\r\n", start);
    ASSERT_NE(end, std::string::npos);
    EXPECT_LE(end - start, 998u);
    start = end + 2;
  }
  // The header continuation is folded (starts with a space); the body is split as is.
  EXPECT_NE(rendered.find("\r\n s"), std::string::npos);
  EXPECT_EQ(rendered.substr(rendered.find("\r\n\r\n") + 4), std::string(998, 'b') + "\r\n" +
                                                                std::string(998, 'b') + "\r\n" +
                                                                std::string(4, 'b') + "\r\n");
}

TEST(MessageFields, DateMessageIdMailbox) {
  EXPECT_TRUE(std::regex_match(
      format_date_now(),
      std::regex(R"([A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4})")));
  const auto id = make_message_id("vm1.example.test");
  EXPECT_TRUE(std::regex_match(id, std::regex(R"(<\d{14}\.[0-9a-f]{16}@vm1\.example\.test>)")))
      << id;
  EXPECT_NE(make_message_id("x"), make_message_id("x"));
  EXPECT_EQ(format_mailbox("", "a@b"), "<a@b>");
  EXPECT_EQ(format_mailbox("Cron Daemon", "a@b"), "Cron Daemon <a@b>");
  EXPECT_EQ(format_mailbox("Doe, \"J\"", "a@b"), "\"Doe, \\\"J\\\"\" <a@b>");
}

}  // namespace
