#include "portrelay/smtp/header_section.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using portrelay::smtp::parse_header_section;

TEST(HeaderSection, FieldsUpToTheEmptyLine) {
  const std::string content = "From: a@b\r\nSubject: hi\r\n\r\nbody\r\n";
  const auto section = parse_header_section(content);
  ASSERT_TRUE(section.complete);
  EXPECT_EQ(section.size, content.find("body"));
  ASSERT_EQ(section.fields.size(), 2u);
  EXPECT_EQ(section.fields[0].name, "From");
  EXPECT_EQ(section.fields[0].value(), " a@b");
  EXPECT_EQ(section.fields[1].text, "Subject: hi\r\n");
  EXPECT_TRUE(section.has("subject"));
  EXPECT_FALSE(section.has("Date"));
}

TEST(HeaderSection, FoldedLinesBelongToTheirField) {
  const std::string content = "To: a@b,\r\n c@d,\r\n\te@f\r\nX: y\r\n\r\n";
  const auto section = parse_header_section(content);
  ASSERT_EQ(section.fields.size(), 2u);
  EXPECT_EQ(section.fields[0].value(), " a@b,\r\n c@d,\r\n\te@f");
  EXPECT_EQ(section.size, content.size());
}

TEST(HeaderSection, ABodyLineWithoutTheEmptyLineEndsTheSection) {
  const std::string content = "From: a@b\r\nthis is body text\r\n";
  const auto section = parse_header_section(content);
  ASSERT_TRUE(section.complete);
  EXPECT_EQ(section.size, std::string("From: a@b\r\n").size());
  EXPECT_EQ(parse_header_section("hello\r\n").size, 0u);
  EXPECT_TRUE(parse_header_section("\r\nbody").complete);
  EXPECT_EQ(parse_header_section("\r\nbody").size, 2u);
}

TEST(HeaderSection, IncompleteUntilTheEndIsSeen) {
  // The last field may still be continued: nothing is final yet.
  auto section = parse_header_section("From: a@b\r\nTo: c@d\r\n");
  EXPECT_FALSE(section.complete);
  EXPECT_EQ(section.fields.size(), 1u);
  section = parse_header_section("From: a@b\r\nTo: c@");
  EXPECT_FALSE(section.complete);
  // Unless there is no more content: a message that is all header.
  section = parse_header_section("From: a@b\r\nTo: c@d\r\n", true);
  EXPECT_TRUE(section.complete);
  EXPECT_EQ(section.fields.size(), 2u);
  section = parse_header_section("From: a@b", true);
  ASSERT_EQ(section.fields.size(), 1u);
  EXPECT_EQ(section.fields[0].value(), " a@b");
}

TEST(HeaderSection, LongLinesAreFields) {
  const std::string long_value(990, 'x');
  const std::string content = "X-Long: " + long_value + "\r\n\r\n";
  const auto section = parse_header_section(content);
  ASSERT_EQ(section.fields.size(), 1u);
  EXPECT_EQ(section.fields[0].value().size(), long_value.size() + 1);
}

}  // namespace
