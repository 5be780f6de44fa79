#include "portrelay/config/identity_rewriter.hpp"

#include <gtest/gtest.h>

#include <string>

#include "portrelay/config/config.hpp"
#include "portrelay/smtp/header_section.hpp"

namespace {

using portrelay::config::Config;
using portrelay::config::ConfigError;
using portrelay::config::IdentityRewriter;
using portrelay::config::parse_config;

Config parse(const std::string& text) { return parse_config(text, "t.toml"); }

constexpr const char* kBase =
    "[server]\nhostname = \"vm-1234.internal\"\n"
    "[[upstream]]\nname = \"sendgrid\"\nhost = \"smtp.example.com\"\nport = 587\n"
    "sender = \"bounces@sg.example.com\"\nfrom = \"SG <alerts@sg.example.com>\"\n"
    "[[upstream]]\nname = \"sendgrid\"\nhost = \"smtp.example.com\"\nport = 2525\n"
    "[[upstream]]\nname = \"mailgun\"\nhost = \"smtp.mailgun.example\"\nport = 587\n";

std::string rewrite(const portrelay::smtp::HeaderRewrite& plan, const std::string& content) {
  const auto section = portrelay::smtp::parse_header_section(content, true);
  return portrelay::smtp::rewrite_header_section(content, section, plan).header +
         content.substr(section.size);
}

TEST(IdentityConfig, RewriteKeysAndDefaults) {
  Config config = parse(std::string(kBase) +
                        "[rewrite]\nsender = \"alerts@example.com\"\n"
                        "from = \"VM alerts <alerts@example.com>\"\n");
  EXPECT_EQ(config.rewrite.identity.sender, "alerts@example.com");
  EXPECT_EQ(config.rewrite.identity.from_address, "alerts@example.com");
  EXPECT_FALSE(config.rewrite.identity.all_senders);
  EXPECT_TRUE(config.rewrite.keep_reply_to);
  EXPECT_TRUE(config.server.add_missing_headers);
  config = parse(std::string(kBase) +
                 "[rewrite]\nsender = \"a@example.com\"\nall_senders = true\n"
                 "keep_reply_to = false\n");
  EXPECT_TRUE(config.rewrite.identity.all_senders);
  EXPECT_FALSE(config.rewrite.keep_reply_to);
}

TEST(IdentityConfig, UpstreamIdentityIsTheAccountsFromItsFirstTable) {
  const Config config = parse(kBase);
  ASSERT_EQ(config.upstreams.size(), 2u);
  EXPECT_EQ(config.upstreams[0].identity.sender, "bounces@sg.example.com");
  EXPECT_EQ(config.upstreams[0].identity.from, "SG <alerts@sg.example.com>");
  EXPECT_FALSE(config.upstreams[1].identity.configured());
}

TEST(IdentityConfig, BadValuesPointAtTheKey) {
  auto error_of = [](const std::string& text) {
    try {
      parse(text);
    } catch (const ConfigError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of(std::string(kBase) + "[rewrite]\nsender = \"root\"\n")
                .find("rewrite.sender: \"root\" is not a full address"),
            std::string::npos);
  EXPECT_NE(error_of(std::string(kBase) + "[rewrite]\nfrom = \"a@b, c@d\"\n").find("rewrite.from"),
            std::string::npos);
  EXPECT_NE(
      error_of(std::string(kBase) + "[rewrite]\nall_senders = true\n").find("needs sender or from"),
      std::string::npos);
  const std::string later =
      "[[upstream]]\nname = \"a\"\nhost = \"h.example\"\nport = 587\n"
      "[[upstream]]\nname = \"a\"\nhost = \"h.example\"\nport = 2525\nsender = \"x@example.com\"\n";
  EXPECT_NE(error_of(later).find("write them on the first [[upstream]] named \"a\" (line 1)"),
            std::string::npos);
}

TEST(IdentityRewriter, LocalSendersGetTheIdentityAndOthersKeepTheirs) {
  const Config config = parse(std::string(kBase) + "[rewrite]\nsender = \"alerts@example.com\"\n");
  const IdentityRewriter rewriter(config, "example.net");
  EXPECT_EQ(rewriter.accepted_sender("root"), "alerts@example.com");
  EXPECT_EQ(rewriter.accepted_sender("root@vm-1234.internal"), "alerts@example.com");
  EXPECT_EQ(rewriter.accepted_sender("root@localhost"), "alerts@example.com");
  EXPECT_EQ(rewriter.accepted_sender("app@example.org"), "app@example.org");
  EXPECT_EQ(rewriter.accepted_sender(""), "");  // <> is never rewritten
  // The From of local mail: address replaced, name kept, Reply-To added.
  const auto plan = rewriter.acceptance_plan("root", false);
  EXPECT_EQ(rewrite(plan, "From: Cron <root@vm-1234.internal>\r\n\r\n"),
            "From: Cron <alerts@example.com>\r\nReply-To: Cron <root@vm-1234.internal>\r\n\r\n");
  // An app's own From is left alone, but a local From is not, whatever the envelope.
  const auto remote = rewriter.acceptance_plan("app@example.org", false);
  EXPECT_EQ(rewrite(remote, "From: app@example.org\r\n\r\n"), "From: app@example.org\r\n\r\n");
  EXPECT_EQ(rewrite(remote, "From: www-data\r\n\r\n"),
            "From: alerts@example.com\r\nReply-To: www-data\r\n\r\n");
}

TEST(IdentityRewriter, AllSendersRewritesEverySenderButTheNullOne) {
  const Config config = parse(std::string(kBase) +
                              "[rewrite]\nfrom = \"Ops <ops@example.com>\"\n"
                              "sender = \"ops@example.com\"\nall_senders = true\n");
  const IdentityRewriter rewriter(config, "example.net");
  EXPECT_EQ(rewriter.accepted_sender("app@example.org"), "ops@example.com");
  EXPECT_EQ(rewriter.accepted_sender(""), "");
  EXPECT_EQ(rewrite(rewriter.acceptance_plan("app@example.org", false),
                    "From: App <app@example.org>\r\nReply-To: help@example.org\r\n\r\n"),
            "From: Ops <ops@example.com>\r\nReply-To: help@example.org\r\n\r\n");
}

TEST(IdentityRewriter, AliasesQualifyToAndCc) {
  const Config config = parse(std::string(kBase) + "[aliases]\nroot = \"ops@example.com\"\n");
  const IdentityRewriter rewriter(config, "example.net");
  // No [rewrite] identity: a bare name only gets the mail domain; a full one stays.
  EXPECT_EQ(rewriter.accepted_sender("root"), "root@example.net");
  EXPECT_EQ(rewriter.accepted_sender("root@vm-1234.internal"), "root@vm-1234.internal");
  EXPECT_EQ(rewrite(rewriter.acceptance_plan("root", false),
                    "To: root, root@vm-1234.internal, nobody\r\nCc: x@example.org\r\n\r\n"),
            "To: ops@example.com, ops@example.com, nobody\r\nCc: x@example.org\r\n\r\n");
}

TEST(IdentityRewriter, AddMissingHeadersUsesTheMailDomain) {
  const Config config = parse(kBase);
  const IdentityRewriter rewriter(config, "mail.example.net");
  EXPECT_TRUE(rewriter.acceptance_plan("app@example.org", false).empty());
  const std::string out =
      rewrite(rewriter.acceptance_plan("app@example.org", true), "Subject: s\r\n\r\n");
  EXPECT_NE(out.find("\r\nDate: "), std::string::npos);
  EXPECT_NE(out.find("@mail.example.net>\r\n"), std::string::npos);
}

TEST(IdentityRewriter, UpstreamIdentityAppliesToMailThatWasLocal) {
  const Config config = parse(std::string(kBase) + "[rewrite]\nsender = \"alerts@example.com\"\n");
  const IdentityRewriter rewriter(config, "example.net");
  const auto& sendgrid = config.upstreams[0].identity;
  // Rewritten at acceptance to [rewrite]'s identity: still this machine's own mail.
  EXPECT_EQ(rewriter.upstream_sender(sendgrid, "alerts@example.com"), "bounces@sg.example.com");
  EXPECT_EQ(rewriter.upstream_sender(sendgrid, "root@vm-1234.internal"), "bounces@sg.example.com");
  EXPECT_EQ(rewriter.upstream_sender(sendgrid, "app@example.org"), "app@example.org");
  EXPECT_EQ(rewriter.upstream_sender(sendgrid, ""), "");
  EXPECT_EQ(rewrite(rewriter.upstream_plan(sendgrid, "alerts@example.com"),
                    "From: Cron <alerts@example.com>\r\nReply-To: ops@example.com\r\n\r\n"),
            "From: SG <alerts@sg.example.com>\r\nReply-To: ops@example.com\r\n\r\n");
  EXPECT_EQ(
      rewrite(rewriter.upstream_plan(sendgrid, "app@example.org"), "From: app@example.org\r\n\r\n"),
      "From: app@example.org\r\n\r\n");
  EXPECT_TRUE(rewriter.upstream_plan(config.upstreams[1].identity, "root").empty());
}

}  // namespace
