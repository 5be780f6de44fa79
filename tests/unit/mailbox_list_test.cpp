#include "portrelay/smtp/mailbox_list.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using portrelay::smtp::Mailbox;
using portrelay::smtp::parse_mailbox_list;

std::vector<std::string> addresses(std::string_view value) {
  std::vector<std::string> out;
  for (const Mailbox& mailbox : parse_mailbox_list(value)) out.push_back(mailbox.address);
  return out;
}

std::string at(std::string_view value, std::size_t begin, std::size_t end) {
  return std::string(value.substr(begin, end - begin));
}

TEST(MailboxList, BareAndNameAddrForms) {
  EXPECT_EQ(addresses(" a@b.example, Name <c@d.example>"),
            (std::vector<std::string>{"a@b.example", "c@d.example"}));
  EXPECT_EQ(addresses(" root"), (std::vector<std::string>{"root"}));
}

TEST(MailboxList, SpansPointAtTheAddressAsWritten) {
  const std::string value = " \"Cron Daemon\" <root@vm> (the cron)";
  const auto list = parse_mailbox_list(value);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(at(value, list[0].address_begin, list[0].address_end), "root@vm");
  EXPECT_EQ(at(value, list[0].begin, list[0].end), "\"Cron Daemon\" <root@vm> (the cron)");
  EXPECT_EQ(list[0].display_name, "\"Cron Daemon\"");
  EXPECT_TRUE(list[0].angle);
}

TEST(MailboxList, BareAddressWithCommentKeepsTheCommentOutOfTheAddress) {
  const std::string value = " root (Cron Daemon)";
  const auto list = parse_mailbox_list(value);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].address, "root");
  EXPECT_EQ(at(value, list[0].address_begin, list[0].address_end), "root");
  EXPECT_FALSE(list[0].angle);
  EXPECT_EQ(list[0].display_name, "");
}

TEST(MailboxList, QuotedDisplayNamesMayHoldCommasColonsAndAngles) {
  EXPECT_EQ(addresses(" \"Doe, John: <x@y>\" <john@example.com>, b@c"),
            (std::vector<std::string>{"john@example.com", "b@c"}));
  EXPECT_EQ(addresses(" \"a \\\" quote, here\" <q@example.com>"),
            (std::vector<std::string>{"q@example.com"}));
}

TEST(MailboxList, NestedCommentsAndEscapesAreSkipped) {
  EXPECT_EQ(addresses(" a@b (x (nested, y) \\) z), c@d"), (std::vector<std::string>{"a@b", "c@d"}));
  EXPECT_EQ(addresses(" (only a comment)"), (std::vector<std::string>{}));
}

TEST(MailboxList, GroupsGiveTheirMembersAndEmptyGroupsNothing) {
  EXPECT_EQ(addresses(" team: a@b, Name <c@d>;, e@f"),
            (std::vector<std::string>{"a@b", "c@d", "e@f"}));
  EXPECT_EQ(addresses(" undisclosed-recipients:;"), (std::vector<std::string>{}));
}

TEST(MailboxList, FoldingIsWhitespace) {
  const std::string value = " First\r\n Person <a@b>,\r\n\tsecond@example.com";
  const auto list = parse_mailbox_list(value);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].address, "a@b");
  EXPECT_EQ(list[0].display_name, "First\r\n Person");
  EXPECT_EQ(list[1].address, "second@example.com");
}

TEST(MailboxList, EncodedWordsStayAsWritten) {
  const std::string value = " =?UTF-8?B?SsO8cmdlbg==?= <j@example.com>";
  const auto list = parse_mailbox_list(value);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].display_name, "=?UTF-8?B?SsO8cmdlbg==?=");
  EXPECT_EQ(list[0].address, "j@example.com");
}

TEST(MailboxList, SourceRoutesAndQuotedLocalParts) {
  EXPECT_EQ(addresses(" <@relay.example,@other:user@example.com>"),
            (std::vector<std::string>{"user@example.com"}));
  EXPECT_EQ(addresses(" \"odd user\"@example.com"),
            (std::vector<std::string>{"\"odd user\"@example.com"}));
}

TEST(MailboxList, MalformedInputGivesWhatCanBeRecognised) {
  EXPECT_EQ(addresses(" <unclosed@example.com"),
            (std::vector<std::string>{"unclosed@example.com"}));
  // An unclosed quote runs to the end: all of it is one (odd) local part, taken as written.
  EXPECT_EQ(addresses(" \"unclosed quote <a@b>"),
            (std::vector<std::string>{"\"unclosed quote <a@b>"}));
  EXPECT_EQ(addresses(" ,,, ;"), (std::vector<std::string>{}));
  EXPECT_EQ(addresses(" <>"), (std::vector<std::string>{}));
}

}  // namespace
