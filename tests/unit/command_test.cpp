#include "portrelay/smtp/command.hpp"

#include <gtest/gtest.h>

#include <string>

namespace portrelay::smtp {
namespace {

PathArgument mail_ok(std::string_view argument) {
  auto parsed = parse_mail_from(argument);
  EXPECT_TRUE(parsed.ok()) << argument << ": " << (parsed ? "" : parsed.error().message);
  return parsed ? *parsed : PathArgument{};
}

PathArgument rcpt_ok(std::string_view argument) {
  auto parsed = parse_rcpt_to(argument);
  EXPECT_TRUE(parsed.ok()) << argument << ": " << (parsed ? "" : parsed.error().message);
  return parsed ? *parsed : PathArgument{};
}

void mail_rejected(std::string_view argument) {
  auto parsed = parse_mail_from(argument);
  ASSERT_FALSE(parsed.ok()) << testing::PrintToString(std::string(argument));
  EXPECT_FALSE(parsed.error().message.empty()) << testing::PrintToString(std::string(argument));
}

void rcpt_rejected(std::string_view argument) {
  auto parsed = parse_rcpt_to(argument);
  ASSERT_FALSE(parsed.ok()) << testing::PrintToString(std::string(argument));
  EXPECT_FALSE(parsed.error().message.empty()) << testing::PrintToString(std::string(argument));
}

TEST(CommandParser, VerbsAreCaseInsensitive) {
  Command c = parse_command("mail FROM:<a@b.example>");
  EXPECT_EQ(c.verb, Verb::Mail);
  EXPECT_EQ(c.verb_text, "MAIL");
  EXPECT_EQ(c.argument, "FROM:<a@b.example>");
  EXPECT_EQ(parse_command("StartTLS").verb, Verb::Starttls);
  EXPECT_EQ(parse_command("eHlO client").verb, Verb::Ehlo);
}

TEST(CommandParser, AllKnownVerbs) {
  const std::pair<const char*, Verb> verbs[] = {
      {"HELO", Verb::Helo}, {"EHLO", Verb::Ehlo}, {"MAIL", Verb::Mail},
      {"RCPT", Verb::Rcpt}, {"DATA", Verb::Data}, {"RSET", Verb::Rset},
      {"NOOP", Verb::Noop}, {"QUIT", Verb::Quit}, {"VRFY", Verb::Vrfy},
      {"EXPN", Verb::Expn}, {"HELP", Verb::Help}, {"STARTTLS", Verb::Starttls},
      {"AUTH", Verb::Auth}, {"BDAT", Verb::Bdat},
  };
  for (const auto& [name, verb] : verbs) EXPECT_EQ(parse_command(name).verb, verb) << name;
}

TEST(CommandParser, ArgumentHandling) {
  Command quit = parse_command("QUIT");
  EXPECT_EQ(quit.verb, Verb::Quit);
  EXPECT_EQ(quit.argument, "");
  EXPECT_EQ(parse_command("EHLO client.example   ").argument, "client.example");
  EXPECT_EQ(parse_command("AUTH PLAIN dGVzdA==").argument, "PLAIN dGVzdA==");
  EXPECT_EQ(parse_command("NOOP ").argument, "");
}

TEST(CommandParser, UnknownVerbs) {
  Command c = parse_command("xyzzy magic");
  EXPECT_EQ(c.verb, Verb::Unknown);
  EXPECT_EQ(c.verb_text, "XYZZY");
  EXPECT_EQ(c.argument, "magic");
  EXPECT_EQ(parse_command("").verb, Verb::Unknown);
  EXPECT_EQ(parse_command("MAILX FROM:<>").verb, Verb::Unknown);
  EXPECT_EQ(parse_command(" MAIL FROM:<>").verb, Verb::Unknown);
}

TEST(CommandParser, MailFromBasicForms) {
  EXPECT_EQ(mail_ok("FROM:<a@b.example>").address, "a@b.example");
  EXPECT_EQ(mail_ok("FROM: <a@b.example>").address, "a@b.example");
  EXPECT_EQ(mail_ok("from:<a@b.example>").address, "a@b.example");
  PathArgument null_sender = mail_ok("FROM:<>");
  EXPECT_EQ(null_sender.address, "");
  EXPECT_TRUE(null_sender.parameters.empty());
}

TEST(CommandParser, MailFromParameters) {
  PathArgument p = mail_ok("FROM:<a@b.example> size=1000 BODY=8BITMIME SmtpUtf8");
  ASSERT_EQ(p.parameters.size(), 3u);
  EXPECT_EQ(p.parameters[0].keyword, "SIZE");
  EXPECT_EQ(p.parameters[0].value, "1000");
  EXPECT_EQ(p.parameters[1].keyword, "BODY");
  EXPECT_EQ(p.parameters[1].value, "8BITMIME");
  EXPECT_EQ(p.parameters[2].keyword, "SMTPUTF8");
  EXPECT_EQ(p.parameters[2].value, "");
  ASSERT_NE(p.find("size"), nullptr);
  EXPECT_EQ(p.find("Size")->value, "1000");
  EXPECT_EQ(p.find("AUTH"), nullptr);

  PathArgument auth = mail_ok("FROM:<> AUTH=<> ENVID=QQ314159+2B42 X-CUSTOM-1=v");
  ASSERT_EQ(auth.parameters.size(), 3u);
  EXPECT_EQ(auth.find("AUTH")->value, "<>");
  EXPECT_EQ(auth.find("ENVID")->value, "QQ314159+2B42");
  EXPECT_EQ(auth.find("x-custom-1")->value, "v");
}

TEST(CommandParser, QuotedLocalPart) {
  EXPECT_EQ(mail_ok("FROM:<\"john doe\"@example.com>").address, "\"john doe\"@example.com");
  EXPECT_EQ(rcpt_ok("TO:<\"a>b@c\"@example.com>").address, "\"a>b@c\"@example.com");
  EXPECT_EQ(rcpt_ok("TO:<\"q\\\"x\"@example.com>").address, "\"q\\\"x\"@example.com");
  rcpt_rejected("TO:<\"unterminated@example.com>");
  rcpt_rejected("TO:<jo\"hn doe\"@example.com>");
  rcpt_rejected("TO:<\"a\"b@example.com>");
}

TEST(CommandParser, RejectsMalformedPaths) {
  mail_rejected("FROM:a@b.example");
  mail_rejected("FROM:<a@b.example");
  mail_rejected("FROM:a@b.example>");
  mail_rejected("FROM:<<a@b.example>>");
  mail_rejected("FROM:<a@b.example>>");
  mail_rejected("FROM:<a @b.example>");
  mail_rejected("FROM:<a@b.example >");
  mail_rejected("FROM:< a@b.example>");
  mail_rejected("FROM:  <a@b.example>");
  mail_rejected("FROM:<a@b.example>SIZE=10");
  mail_rejected("FROM:<ab.example>");
  mail_rejected("FROM:<a@>");
  mail_rejected("FROM:<@b.example>");
  mail_rejected("FROM:<a@b..example>");
  mail_rejected("FROM:<a@b.example.>");
  mail_rejected("FROM:<a(b)@b.example>");
  mail_rejected("FROM:<postmaster>");
  mail_rejected("TO:<a@b.example>");
  mail_rejected("FROM <a@b.example>");
  mail_rejected("");
}

TEST(CommandParser, RejectsControlCharacters) {
  mail_rejected("FROM:<a@b.example>\r");
  mail_rejected("FROM:<a@b.example>\n");
  mail_rejected("FROM:<a@b\r\n.example>");
  mail_rejected(std::string_view("FROM:<a\0@b.example>", 20));
  mail_rejected("FROM:<a\x01@b.example>");
  mail_rejected("FROM:<a@b.example>\tSIZE=1");
  mail_rejected("FROM:<\"a\x7f\"@b.example>");
  rcpt_rejected("TO:<a@b.example> NOTIFY=NEVER\r\nRSET");
}

TEST(CommandParser, RejectsMalformedParameters) {
  mail_rejected("FROM:<a@b.example> =1");
  mail_rejected("FROM:<a@b.example> SI_ZE=1");
  mail_rejected("FROM:<a@b.example> -SIZE=1");
  mail_rejected("FROM:<a@b.example> SIZE=");
  mail_rejected("FROM:<a@b.example> SIZE=1=2");
}

TEST(CommandParser, PathLengthLimit) {
  const std::string domain = "@example.com";
  // 256 octets including the angle brackets is the maximum.
  const std::string longest(256 - 2 - domain.size(), 'a');
  EXPECT_EQ(mail_ok("FROM:<" + longest + domain + ">").address, longest + domain);
  mail_rejected("FROM:<" + longest + "a" + domain + ">");
  rcpt_rejected("TO:<" + longest + "a" + domain + ">");
}

TEST(CommandParser, RcptToForms) {
  EXPECT_EQ(rcpt_ok("TO:<c@d.example>").address, "c@d.example");
  EXPECT_EQ(rcpt_ok("to: <c@d.example>").address, "c@d.example");
  EXPECT_EQ(rcpt_ok("TO:<postmaster>").address, "postmaster");
  EXPECT_EQ(rcpt_ok("TO:<PostMaster>").address, "PostMaster");
  EXPECT_EQ(rcpt_ok("TO:<user@[127.0.0.1]>").address, "user@[127.0.0.1]");
  EXPECT_EQ(rcpt_ok("TO:<user@[IPv6:::1]>").address, "user@[IPv6:::1]");
  EXPECT_EQ(rcpt_ok("TO:<j\xc3\xb6rg@b\xc3\xbc\x63her.example>").address,
            "j\xc3\xb6rg@b\xc3\xbc\x63her.example");
  PathArgument p = rcpt_ok("TO:<c@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d.example");
  ASSERT_EQ(p.parameters.size(), 2u);
  EXPECT_EQ(p.find("NOTIFY")->value, "SUCCESS,FAILURE");
  EXPECT_EQ(p.find("ORCPT")->value, "rfc822;c@d.example");
}

TEST(CommandParser, RcptRejects) {
  rcpt_rejected("TO:<>");
  rcpt_rejected("TO:<> NOTIFY=NEVER");
  rcpt_rejected("TO:<postmaster@>");
  rcpt_rejected("TO:<user>");
  rcpt_rejected("TO:<user@[]>");
  rcpt_rejected("TO:<user@[1.2.3.4>");
  rcpt_rejected("FROM:<user@d.example>");
  rcpt_rejected("TO:c@d.example");
}

// A bare local part, for a server that maps local names ([aliases], [rewrite]): a
// dot-atom or one quoted string, and nothing else the strict parser refuses.
TEST(CommandParser, BareLocalPartOnlyWhenAsked) {
  constexpr auto bare = BareLocalPart::Accepted;
  for (const char* name : {"root", "www-data", "first.last", "a+b", "\"john doe\"", "\"a@b\""}) {
    auto rcpt = parse_rcpt_to("TO:<" + std::string(name) + ">", bare);
    ASSERT_TRUE(rcpt.ok()) << name << ": " << rcpt.error().message;
    EXPECT_EQ(rcpt->address, name);
    auto mail = parse_mail_from("FROM:<" + std::string(name) + "> SIZE=10", bare);
    ASSERT_TRUE(mail.ok()) << name << ": " << mail.error().message;
    EXPECT_EQ(mail->address, name);
    ASSERT_EQ(mail->parameters.size(), 1u);
    // The default (upstreams, `sendmail`'s check, maildrop files) still wants a domain.
    EXPECT_FALSE(parse_rcpt_to("TO:<" + std::string(name) + ">").ok()) << name;
    EXPECT_FALSE(parse_mail_from("FROM:<" + std::string(name) + ">").ok()) << name;
  }
  EXPECT_EQ(parse_rcpt_to("TO:<@relay.example:root>", bare)->address, "root");
  EXPECT_EQ(parse_mail_from("FROM:<>", bare)->address, "");
  for (const char* bad :
       {"TO:<.root>", "TO:<root.>", "TO:<ro..ot>", "TO:<ro ot>", "TO:<ro(c)ot>", "TO:<root@>",
        "TO:<@root>", "TO:<\"a\"b>", "TO:<\"unterminated>", "TO:<ro\\ot>", "TO:<ro,ot>",
        "TO:<ro:ot>", "TO:<ro;ot>", "TO:<[root]>", "TO:<>", "TO:root", "TO:<root>>"}) {
    EXPECT_FALSE(parse_rcpt_to(bad, bare).ok()) << bad;
    if (std::string_view(bad) == "TO:<>") continue;  // the null reverse path is fine
    EXPECT_FALSE(parse_mail_from("FROM:" + std::string(bad).substr(3), bare).ok()) << bad;
  }
  EXPECT_FALSE(parse_rcpt_to("TO:<ro\x01ot>", bare).ok());
  // The length limit still holds.
  EXPECT_FALSE(parse_rcpt_to("TO:<" + std::string(255, 'a') + ">", bare).ok());
}

TEST(CommandParser, StripsSourceRoutes) {
  EXPECT_EQ(rcpt_ok("TO:<@a.example,@b.example:user@c.example>").address, "user@c.example");
  EXPECT_EQ(mail_ok("FROM:<@a.example:user@c.example>").address, "user@c.example");
  EXPECT_EQ(rcpt_ok("TO:<@relay.example:postmaster>").address, "postmaster");
  rcpt_rejected("TO:<@a.example user@c.example>");
  rcpt_rejected("TO:<@:user@c.example>");
  rcpt_rejected("TO:<@a.example,:user@c.example>");
  rcpt_rejected("TO:<@a.example,b.example:user@c.example>");
  rcpt_rejected("TO:<@a.example:>");
  mail_rejected("FROM:<@a.example:>");
}

}  // namespace
}  // namespace portrelay::smtp

TEST(CommandLineGuard, RefusesCrLfAndNulAnywhere) {
  using portrelay::smtp::is_single_command_line;
  EXPECT_TRUE(is_single_command_line("MAIL FROM:<a@b> SIZE=10"));
  EXPECT_TRUE(is_single_command_line(""));
  EXPECT_FALSE(is_single_command_line("MAIL FROM:<a@x>\r\nRCPT TO:<evil@x>"));
  EXPECT_FALSE(is_single_command_line("RCPT TO:<a@x>\n"));
  EXPECT_FALSE(is_single_command_line("EHLO host\r"));
  EXPECT_FALSE(is_single_command_line(std::string_view("MAIL FROM:<a\0@x>", 16)));
}
