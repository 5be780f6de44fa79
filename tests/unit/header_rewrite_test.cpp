#include "portrelay/smtp/header_rewrite.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "portrelay/smtp/header_filter.hpp"

namespace {

using portrelay::smtp::HeaderFilter;
using portrelay::smtp::HeaderRewrite;
using portrelay::smtp::HeaderRewriteResult;
using portrelay::smtp::parse_header_section;

bool local(std::string_view address) {
  return address.find('@') == std::string_view::npos ||
         address.substr(address.find('@')) == "@vm-1234.internal";
}

// The whole message after the rewrite.
std::string rewritten(const std::string& content, const HeaderRewrite& plan,
                      HeaderRewriteResult* out = nullptr) {
  const auto section = parse_header_section(content, true);
  HeaderRewriteResult result = rewrite_header_section(content, section, plan);
  std::string message = result.header + content.substr(section.size);
  if (out) *out = std::move(result);
  return message;
}

HeaderRewrite address_only(std::string address, bool every = false) {
  HeaderRewrite plan;
  plan.from_address = std::move(address);
  plan.every_from = every;
  plan.is_local = local;
  return plan;
}

TEST(HeaderRewrite, AddressOnlyKeepsTheDisplayNameAndAddsReplyTo) {
  HeaderRewriteResult result;
  const std::string message =
      rewritten("From: \"Cron Daemon\" <root@vm-1234.internal>\r\nSubject: x\r\n\r\nbody\r\n",
                address_only("alerts@example.com"), &result);
  EXPECT_EQ(message,
            "From: \"Cron Daemon\" <alerts@example.com>\r\nSubject: x\r\n"
            "Reply-To: \"Cron Daemon\" <root@vm-1234.internal>\r\n\r\nbody\r\n");
  EXPECT_TRUE(result.from_replaced);
  EXPECT_EQ(result.original_from, "\"Cron Daemon\" <root@vm-1234.internal>");
  EXPECT_FALSE(result.dkim_signature_broken);
}

TEST(HeaderRewrite, WholeMailboxReplacesTheValue) {
  HeaderRewrite plan;
  plan.from_mailbox = "VM alerts <alerts@example.com>";
  plan.is_local = local;
  EXPECT_EQ(rewritten("From: root (Cron Daemon)\r\n\r\n", plan),
            "From: VM alerts <alerts@example.com>\r\nReply-To: root (Cron Daemon)\r\n\r\n");
}

TEST(HeaderRewrite, BareAddressWithCommentKeepsTheComment) {
  EXPECT_EQ(rewritten("From: root (Cron Daemon)\r\nReply-To: me@example.com\r\n\r\n",
                      address_only("alerts@example.com")),
            "From: alerts@example.com (Cron Daemon)\r\nReply-To: me@example.com\r\n\r\n");
}

TEST(HeaderRewrite, RemoteFromIsLeftUnlessEveryFrom) {
  const std::string content = "From: App <app@example.org>\r\n\r\n";
  HeaderRewriteResult result;
  EXPECT_EQ(rewritten(content, address_only("alerts@example.com"), &result), content);
  EXPECT_FALSE(result.changed);
  EXPECT_EQ(rewritten(content, address_only("alerts@example.com", true)),
            "From: App <alerts@example.com>\r\nReply-To: App <app@example.org>\r\n\r\n");
}

TEST(HeaderRewrite, NoReplyToWhenKeepReplyToIsOff) {
  HeaderRewrite plan = address_only("alerts@example.com");
  plan.keep_reply_to = false;
  EXPECT_EQ(rewritten("From: root\r\n\r\n", plan), "From: alerts@example.com\r\n\r\n");
}

TEST(HeaderRewrite, FoldedFromAndEncodedWordsSurvive) {
  const std::string content =
      "From: =?UTF-8?Q?J=C3=BCrgen?=\r\n <juergen@vm-1234.internal>\r\n\r\nx";
  EXPECT_EQ(rewritten(content, address_only("alerts@example.com")),
            "From: =?UTF-8?Q?J=C3=BCrgen?=\r\n <alerts@example.com>\r\n"
            "Reply-To: =?UTF-8?Q?J=C3=BCrgen?=\r\n <juergen@vm-1234.internal>\r\n\r\nx");
}

TEST(HeaderRewrite, MissingFromIsAddedOnlyForEveryFrom) {
  EXPECT_EQ(rewritten("Subject: x\r\n\r\n", address_only("alerts@example.com")),
            "Subject: x\r\n\r\n");
  EXPECT_EQ(rewritten("Subject: x\r\n\r\n", address_only("alerts@example.com", true)),
            "Subject: x\r\nFrom: alerts@example.com\r\n\r\n");
}

TEST(HeaderRewrite, DkimSignatureCoveringFromIsReportedBroken) {
  const std::string signed_from =
      "DKIM-Signature: v=1; a=rsa-sha256; d=vm; s=s;\r\n\th=Date : FROM:Subject; bh=x; b=y\r\n"
      "From: root\r\n\r\n";
  HeaderRewriteResult result;
  rewritten(signed_from, address_only("alerts@example.com"), &result);
  EXPECT_TRUE(result.from_replaced);
  EXPECT_TRUE(result.dkim_signature_broken);
  // A signature over other fields, or no rewrite, breaks nothing.
  rewritten("DKIM-Signature: v=1; h=to:subject; b=y\r\nFrom: root\r\n\r\n",
            address_only("alerts@example.com"), &result);
  EXPECT_FALSE(result.dkim_signature_broken);
  rewritten(signed_from, HeaderRewrite{}, &result);
  EXPECT_FALSE(result.dkim_signature_broken);
  EXPECT_TRUE(portrelay::smtp::dkim_signature_covers(" h=from", "From"));
  EXPECT_FALSE(portrelay::smtp::dkim_signature_covers(" bh=from; h=to", "from"));
}

HeaderRewrite aliases() {
  HeaderRewrite plan;
  plan.recipient_targets = [](std::string_view address) -> std::vector<std::string> {
    if (address == "root") return {"ops@example.com"};
    if (address == "team@vm-1234.internal") return {"a@example.com", "b@example.com"};
    if (local(address)) return {};  // unmapped local: left as it is
    return {std::string(address)};
  };
  return plan;
}

TEST(HeaderRewrite, LocalRecipientsInToAndCcBecomeTheirTargets) {
  EXPECT_EQ(rewritten("To: root\r\nCc: Team <team@vm-1234.internal>, x@example.org\r\n"
                      "Bcc: root\r\n\r\n",
                      aliases()),
            "To: ops@example.com\r\nCc: a@example.com, b@example.com, x@example.org\r\n"
            "Bcc: root\r\n\r\n");
  EXPECT_EQ(rewritten("To: Admin <root>, nobody\r\n\r\n", aliases()),
            "To: Admin <ops@example.com>, nobody\r\n\r\n");
}

TEST(HeaderRewrite, ReplyToFromALocalAuthorIsMappedToo) {
  HeaderRewrite plan = aliases();
  plan.from_address = "alerts@example.com";
  plan.is_local = local;
  EXPECT_EQ(rewritten("From: root\r\n\r\n", plan),
            "From: alerts@example.com\r\nReply-To: ops@example.com\r\n\r\n");
}

TEST(HeaderRewrite, DateAndMessageIdAddedOnlyWhenMissing) {
  HeaderRewrite plan;
  int calls = 0;
  plan.date = [&] {
    ++calls;
    return std::string("Tue, 1 Jul 2025 12:00:00 +0000");
  };
  plan.message_id = [&] {
    ++calls;
    return std::string("<1@vm>");
  };
  HeaderRewriteResult result;
  EXPECT_EQ(rewritten("Subject: x\r\n\r\nb", plan, &result),
            "Subject: x\r\nDate: Tue, 1 Jul 2025 12:00:00 +0000\r\nMessage-ID: <1@vm>\r\n\r\nb");
  EXPECT_TRUE(result.added_date && result.added_message_id);
  calls = 0;
  const std::string complete = "Date: x\r\nMessage-Id: <2@vm>\r\n\r\nb";
  EXPECT_EQ(rewritten(complete, plan, &result), complete);
  EXPECT_EQ(calls, 0);
  EXPECT_FALSE(result.changed);
  // A message without a header section at all gets one.
  EXPECT_EQ(rewritten("just text\r\n", plan),
            "Date: Tue, 1 Jul 2025 12:00:00 +0000\r\nMessage-ID: <1@vm>\r\njust text\r\n");
}

TEST(HeaderRewrite, RewrittenLinesStayWithin998Octets) {
  HeaderRewrite plan;
  plan.recipient_targets = [](std::string_view address) -> std::vector<std::string> {
    if (address != "everyone") return {std::string(address)};
    std::vector<std::string> many;
    for (int i = 0; i < 200; ++i) many.push_back("person" + std::to_string(i) + "@example.com");
    return many;
  };
  const std::string message = rewritten("To: everyone\r\n\r\n", plan);
  std::size_t start = 0;
  while (start < message.size()) {
    const auto end = message.find("\r\n", start);
    ASSERT_NE(end, std::string::npos);
    EXPECT_LE(end - start, 998u);
    start = end + 2;
  }
  EXPECT_NE(message.find("person199@example.com"), std::string::npos);
  // Untouched long lines pass exactly as they were.
  const std::string long_line = "X-Long: " + std::string(1200, 'y') + "\r\n\r\n";
  EXPECT_EQ(rewritten(long_line, plan), long_line);
}

TEST(HeaderRewrite, UntouchedFieldsAreCopiedOctetForOctet) {
  const std::string content =
      "Received: from x\r\n\tby y; Tue, 1 Jul 2025\r\nFrom: root\r\nX-Weird:no-space\r\n"
      "Subject: =?ISO-8859-1?Q?caf=E9?=\r\n\r\nbody\r\n.\r\n";
  const std::string message = rewritten(content, address_only("alerts@example.com"));
  EXPECT_EQ(message.find("Received: from x\r\n\tby y; Tue, 1 Jul 2025\r\n"), 0u);
  EXPECT_NE(message.find("X-Weird:no-space\r\nSubject: =?ISO-8859-1?Q?caf=E9?=\r\n"),
            std::string::npos);
  EXPECT_EQ(message.substr(message.size() - 11), "\r\nbody\r\n.\r\n");
}

TEST(HeaderFilter, SameOutputWhateverTheChunking) {
  const std::string content =
      "From: \"Cron Daemon\" <root@vm-1234.internal>\r\nTo: root\r\nSubject: s\r\n\r\n" +
      std::string(5000, 'b') + "\r\n";
  HeaderRewrite plan = aliases();
  plan.from_address = "alerts@example.com";
  plan.is_local = local;
  const std::string whole = rewritten(content, plan);
  for (std::size_t size : {1, 2, 3, 7, 64, 100000}) {
    HeaderFilter filter(plan);
    std::string out;
    for (std::size_t i = 0; i < content.size(); i += size)
      out.append(filter.feed(std::string_view(content).substr(i, size), out));
    filter.finish(out);
    EXPECT_EQ(out, whole) << "chunk size " << size;
    ASSERT_TRUE(filter.result());
    EXPECT_TRUE(filter.result()->from_replaced);
  }
}

TEST(HeaderFilter, AMessageThatIsAllHeaderIsRewrittenAtTheEnd) {
  HeaderFilter filter(address_only("alerts@example.com"));
  std::string out;
  out.append(filter.feed("From: root\r\n", out));
  EXPECT_EQ(out, "");
  filter.finish(out);
  EXPECT_EQ(out, "From: alerts@example.com\r\nReply-To: root\r\n");
}

TEST(HeaderFilter, GivesUpOnAnEndlessHeaderAndLosesNothing) {
  HeaderFilter filter(address_only("alerts@example.com"), 100);
  std::string out, in;
  for (int i = 0; i < 20; ++i) {
    const std::string line = "X-" + std::to_string(i) + ": v\r\n";
    in += line;
    out.append(filter.feed(line, out));
  }
  out.append(filter.feed("From: root\r\n\r\nbody", out));
  in += "From: root\r\n\r\nbody";
  filter.finish(out);
  EXPECT_TRUE(filter.gave_up());
  EXPECT_EQ(out, in);
}

}  // namespace

namespace {

TEST(HeaderRewrite, AnUnclosedAngleBracketReplacesTheWholeMailbox) {
  // Found by header_rewrite_fuzz: the address of "<root, x" runs to the end of the value,
  // so only replacing the whole mailbox leaves a From that parses back to the new address.
  HeaderRewrite plan = address_only("alerts@example.com", true);
  plan.keep_reply_to = false;
  EXPECT_EQ(rewritten("From: Name <root\r,\r\n\r\n", plan), "From: alerts@example.com\r\n\r\n");
}

}  // namespace

namespace {

TEST(HeaderRewrite, AGreaterThanInsideACommentDoesNotCloseTheAngleAddr) {
  // Found by header_rewrite_fuzz: the list and the mailbox must agree on where "<" ends.
  HeaderRewrite plan = address_only("alerts@example.com", true);
  plan.keep_reply_to = false;
  EXPECT_EQ(rewritten("From: Name <root (a>b)>, x@y\r\n\r\n", plan),
            "From: Name <alerts@example.com (a>b)>, alerts@example.com\r\n\r\n");
}

}  // namespace
