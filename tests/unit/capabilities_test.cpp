#include "portrelay/smtp/capabilities.hpp"

#include <gtest/gtest.h>

namespace portrelay::smtp {
namespace {

Capabilities parse(std::vector<std::string> lines) {
  Reply reply;
  reply.code = 250;
  reply.lines = std::move(lines);
  return Capabilities::from_ehlo(reply);
}

TEST(Capabilities, TypicalEhloReply) {
  Capabilities caps =
      parse({"mx.example Hello client [127.0.0.1]", "PIPELINING", "SIZE 35882577", "STARTTLS",
             "AUTH PLAIN LOGIN", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8", "CHUNKING"});
  EXPECT_TRUE(caps.pipelining);
  EXPECT_TRUE(caps.starttls);
  EXPECT_TRUE(caps.size);
  EXPECT_EQ(caps.size_limit, 35882577u);
  EXPECT_TRUE(caps.eight_bit_mime);
  EXPECT_TRUE(caps.enhanced_status_codes);
  EXPECT_TRUE(caps.smtputf8);
  EXPECT_EQ(caps.auth_mechanisms, (std::vector<std::string>{"PLAIN", "LOGIN"}));
  EXPECT_TRUE(caps.supports_auth("PLAIN"));
  EXPECT_TRUE(caps.supports_auth("login"));
  EXPECT_FALSE(caps.supports_auth("CRAM-MD5"));
}

TEST(Capabilities, GreetingLineIsIgnored) {
  Capabilities caps = parse({"STARTTLS", "SIZE"});
  EXPECT_FALSE(caps.starttls);
  EXPECT_TRUE(caps.size);
  EXPECT_EQ(caps.size_limit, 0u);
}

TEST(Capabilities, NothingAnnounced) {
  Capabilities caps = parse({"mx.example"});
  EXPECT_FALSE(caps.pipelining);
  EXPECT_FALSE(caps.starttls);
  EXPECT_FALSE(caps.size);
  EXPECT_FALSE(caps.eight_bit_mime);
  EXPECT_FALSE(caps.enhanced_status_codes);
  EXPECT_FALSE(caps.smtputf8);
  EXPECT_TRUE(caps.auth_mechanisms.empty());
  EXPECT_FALSE(caps.supports_auth("PLAIN"));
  EXPECT_FALSE(parse({}).starttls);
}

TEST(Capabilities, KeywordsAreCaseInsensitive) {
  Capabilities caps =
      parse({"mx", "starttls", "Pipelining", "size 1000", "auth plain xoauth2", "8bitmime"});
  EXPECT_TRUE(caps.starttls);
  EXPECT_TRUE(caps.pipelining);
  EXPECT_EQ(caps.size_limit, 1000u);
  EXPECT_TRUE(caps.eight_bit_mime);
  EXPECT_EQ(caps.auth_mechanisms, (std::vector<std::string>{"PLAIN", "XOAUTH2"}));
}

TEST(Capabilities, OldAuthEqualsForm) {
  EXPECT_EQ(parse({"mx", "AUTH=LOGIN"}).auth_mechanisms, std::vector<std::string>{"LOGIN"});
  Capabilities both = parse({"mx", "AUTH LOGIN PLAIN", "AUTH=LOGIN PLAIN"});
  EXPECT_EQ(both.auth_mechanisms, (std::vector<std::string>{"LOGIN", "PLAIN"}));
  EXPECT_TRUE(both.supports_auth("plain"));
}

TEST(Capabilities, SizeValues) {
  EXPECT_EQ(parse({"mx", "SIZE 0"}).size_limit, 0u);
  EXPECT_EQ(parse({"mx", "SIZE   52428800  "}).size_limit, 52428800u);
  Capabilities bad = parse({"mx", "SIZE 12abc"});
  EXPECT_TRUE(bad.size);
  EXPECT_EQ(bad.size_limit, 0u);
  EXPECT_EQ(parse({"mx", "SIZE 99999999999999999999999"}).size_limit, 0u);
  EXPECT_FALSE(parse({"mx", "SIZEX 10"}).size);
}

TEST(Capabilities, SimilarKeywordsDoNotMatch) {
  Capabilities caps = parse({"mx", "STARTTLSX", "XPIPELINING", "AUTHX PLAIN", "X-AUTH=PLAIN"});
  EXPECT_FALSE(caps.starttls);
  EXPECT_FALSE(caps.pipelining);
  EXPECT_TRUE(caps.auth_mechanisms.empty());
}

}  // namespace
}  // namespace portrelay::smtp
