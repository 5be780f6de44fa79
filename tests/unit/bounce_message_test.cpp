// Delivery status notifications: the produced message is taken apart again here (MIME
// parts by boundary, delivery-status field groups) and every field RFC 3464 requires is
// checked, as are the octet-level guarantees (CRLF, 998, 7-bit).
#include "portrelay/spool/bounce_message.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace {

using portrelay::spool::BounceInput;
using portrelay::spool::BounceRecipient;
using portrelay::spool::build_bounce;
using portrelay::spool::header_section;
using portrelay::spool::is_bounce;

// Field name (lower case) -> unfolded values, in order.
using Fields = std::multimap<std::string, std::string>;

std::string lower(std::string text) {
  for (char& c : text)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return text;
}

// Parses "Name: value" lines with CRLF ends and folding.
Fields parse_fields(std::string_view block) {
  Fields fields;
  std::string name, value;
  auto flush = [&] {
    if (!name.empty()) fields.emplace(lower(name), value);
    name.clear();
    value.clear();
  };
  std::size_t position = 0;
  while (position < block.size()) {
    auto end = block.find("\r\n", position);
    if (end == std::string_view::npos) end = block.size();
    std::string_view line = block.substr(position, end - position);
    position = end + 2;
    if (line.empty()) continue;
    if (line[0] == ' ' || line[0] == '\t') {
      value += std::string(line);  // unfolding: remove the CRLF only
      continue;
    }
    flush();
    auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      ADD_FAILURE() << "not a field: " << line;
      continue;
    }
    name = std::string(line.substr(0, colon));
    auto rest = line.substr(colon + 1);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    value = std::string(rest);
  }
  flush();
  return fields;
}

std::string one(const Fields& fields, const std::string& name) {
  auto count = fields.count(name);
  EXPECT_EQ(count, 1u) << name;
  auto found = fields.find(name);
  return found == fields.end() ? std::string() : found->second;
}

struct Part {
  Fields headers;
  std::string content;
};

struct ParsedBounce {
  Fields headers;
  std::string boundary;
  std::vector<Part> parts;
};

ParsedBounce parse_bounce(const std::string& message) {
  ParsedBounce parsed;
  auto blank = message.find("\r\n\r\n");
  EXPECT_NE(blank, std::string::npos);
  parsed.headers = parse_fields(std::string_view(message).substr(0, blank + 2));
  std::string type = one(parsed.headers, "content-type");
  auto at = type.find("boundary=\"");
  EXPECT_NE(at, std::string::npos) << type;
  if (at == std::string::npos) return parsed;
  auto start = at + 10;
  parsed.boundary = type.substr(start, type.find('"', start) - start);
  const std::string delimiter = "\r\n--" + parsed.boundary;
  std::string body = "\r\n" + message.substr(blank + 4);  // a delimiter may start the body
  auto position = body.find(delimiter);
  EXPECT_NE(position, std::string::npos);
  while (position != std::string::npos) {
    auto after = position + delimiter.size();
    if (body.compare(after, 2, "--") == 0) {
      EXPECT_EQ(body.substr(after), "--\r\n") << "close delimiter ends the message";
      break;
    }
    EXPECT_EQ(body.compare(after, 2, "\r\n"), 0);
    auto next = body.find(delimiter, after);
    EXPECT_NE(next, std::string::npos) << "unterminated multipart";
    if (next == std::string::npos) break;
    std::string text = body.substr(after + 2, next - after - 2);
    auto part_blank = text.find("\r\n\r\n");
    EXPECT_NE(part_blank, std::string::npos);
    Part part;
    part.headers = parse_fields(std::string_view(text).substr(0, part_blank + 2));
    part.content = text.substr(part_blank + 4);
    parsed.parts.push_back(std::move(part));
    position = next;
  }
  return parsed;
}

// The delivery-status content: groups of fields separated by blank lines.
std::vector<Fields> status_groups(const std::string& content) {
  std::vector<Fields> groups;
  std::size_t position = 0;
  while (position <= content.size()) {
    auto end = content.find("\r\n\r\n", position);
    std::string_view block = std::string_view(content).substr(
        position, end == std::string::npos ? std::string::npos : end + 2 - position);
    groups.push_back(parse_fields(block));
    if (end == std::string::npos) break;
    position = end + 4;
  }
  return groups;
}

void expect_clean_octets(const std::string& message) {
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < message.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(message[i]);
    ASSERT_LT(c, 0x80) << "8-bit octet at " << i;
    ASSERT_NE(c, 0) << "NUL at " << i;
    if (c == '\r') {
      ASSERT_TRUE(i + 1 < message.size() && message[i + 1] == '\n') << "bare CR at " << i;
    }
    if (c == '\n') {
      ASSERT_TRUE(i > 0 && message[i - 1] == '\r') << "bare LF at " << i;
      ASSERT_LE(i - 1 - line_start, 998u) << "line starting at " << line_start;
      line_start = i + 1;
    }
  }
  ASSERT_TRUE(message.ends_with("\r\n"));
}

const std::string kOriginalHeaders =
    "From: App <app@vm.example>\r\n"
    "To: b@x.example, c@y.example, d@z.example\r\n"
    "Subject: monthly report\r\n"
    "Message-ID: <m1@vm.example>\r\n";

BounceInput three_recipients() {
  BounceInput input;
  input.reporting_mta = "relay.example.net";
  input.queue_id = "0000018F3A2B4C5D-00012";
  input.original_sender = "app@vm.example";
  input.arrival_ms = 1'700'000'000'000;  // Tue, 14 Nov 2023 22:13:20 +0000
  input.now_ms = 1'700'432'000'000;      // Sun, 19 Nov 2023 22:13:20 +0000
  input.reason = "permanently refused, or not delivered within 5d";
  input.recipients = {
      {"b@x.example", "failed", "5.1.1", "mx.x.example", "550 5.1.1 <b@x.example>: unknown user"},
      {"\"c d\"@y.example", "failed", "4.4.7", "", ""},
      {"d@z.example", "delayed", "", "mx.z.example", "451 4.3.0 try again later"},
  };
  input.original_headers = kOriginalHeaders;
  return input;
}

TEST(BounceMessage, TopLevelHeaders) {
  auto message = build_bounce(three_recipients());
  auto parsed = parse_bounce(message);
  EXPECT_EQ(one(parsed.headers, "from"), "Mail Delivery System <MAILER-DAEMON@relay.example.net>");
  EXPECT_EQ(one(parsed.headers, "to"), "<app@vm.example>");
  EXPECT_EQ(one(parsed.headers, "date"), "Sun, 19 Nov 2023 22:13:20 +0000");
  EXPECT_EQ(one(parsed.headers, "mime-version"), "1.0");
  EXPECT_EQ(one(parsed.headers, "auto-submitted"), "auto-replied");
  EXPECT_FALSE(one(parsed.headers, "subject").empty());
  auto id = one(parsed.headers, "message-id");
  EXPECT_TRUE(id.starts_with("<") && id.ends_with("@relay.example.net>")) << id;
  auto type = one(parsed.headers, "content-type");
  EXPECT_TRUE(type.starts_with("multipart/report;")) << type;
  EXPECT_NE(type.find("report-type=delivery-status"), std::string::npos) << type;
  EXPECT_FALSE(parsed.boundary.empty());
  EXPECT_LE(parsed.boundary.size(), 70u) << "RFC 2046 limit";
}

TEST(BounceMessage, ThreePartsInOrder) {
  auto parsed = parse_bounce(build_bounce(three_recipients()));
  ASSERT_EQ(parsed.parts.size(), 3u);
  EXPECT_TRUE(one(parsed.parts[0].headers, "content-type").starts_with("text/plain"));
  EXPECT_EQ(one(parsed.parts[1].headers, "content-type"), "message/delivery-status");
  EXPECT_EQ(one(parsed.parts[2].headers, "content-type"), "text/rfc822-headers");
  EXPECT_EQ(parsed.parts[2].content, kOriginalHeaders) << "original headers verbatim";
}

TEST(BounceMessage, HumanPartNamesEveryRecipientAndTheReason) {
  auto parsed = parse_bounce(build_bounce(three_recipients()));
  ASSERT_EQ(parsed.parts.size(), 3u);
  const auto& text = parsed.parts[0].content;
  for (std::string expected : {"<b@x.example>", "<\"c d\"@y.example>", "<d@z.example>",
                               "550 5.1.1 <b@x.example>: unknown user", "mx.x.example",
                               "0000018F3A2B4C5D-00012", "not delivered within 5d"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\n" << text;
  }
}

TEST(BounceMessage, DeliveryStatusFields) {
  auto parsed = parse_bounce(build_bounce(three_recipients()));
  ASSERT_EQ(parsed.parts.size(), 3u);
  auto groups = status_groups(parsed.parts[1].content);
  ASSERT_EQ(groups.size(), 4u) << "per-message group + one per recipient:\n"
                               << parsed.parts[1].content;

  const auto& message = groups[0];
  EXPECT_EQ(one(message, "reporting-mta"), "dns; relay.example.net");
  EXPECT_EQ(one(message, "x-portrelay-queue-id"), "0000018F3A2B4C5D-00012");
  EXPECT_EQ(one(message, "arrival-date"), "Tue, 14 Nov 2023 22:13:20 +0000");
  EXPECT_EQ(message.count("original-envelope-id"), 0u) << "that is the submitter's ENVID";

  const auto& refused = groups[1];
  EXPECT_EQ(one(refused, "final-recipient"), "rfc822; b@x.example");
  EXPECT_EQ(one(refused, "action"), "failed");
  EXPECT_EQ(one(refused, "status"), "5.1.1");
  EXPECT_EQ(one(refused, "remote-mta"), "dns; mx.x.example");
  EXPECT_EQ(one(refused, "diagnostic-code"), "smtp; 550 5.1.1 <b@x.example>: unknown user");

  const auto& expired = groups[2];
  EXPECT_EQ(one(expired, "final-recipient"), "rfc822; \"c d\"@y.example");
  EXPECT_EQ(one(expired, "action"), "failed");
  EXPECT_EQ(one(expired, "status"), "4.4.7");
  EXPECT_EQ(expired.count("remote-mta"), 0u) << "no server answered";
  EXPECT_EQ(expired.count("diagnostic-code"), 0u);

  const auto& delayed = groups[3];
  EXPECT_EQ(one(delayed, "action"), "delayed");
  EXPECT_EQ(one(delayed, "status"), "4.3.0") << "taken from the diagnostic";
}

TEST(BounceMessage, OctetGuarantees) {
  auto message = build_bounce(three_recipients());
  expect_clean_octets(message);
}

TEST(BounceMessage, StatusDerivedWhenTheReplyHadNone) {
  auto input = three_recipients();
  input.recipients = {{"a@x", "failed", "", "mx", "550 no such user"},
                      {"b@x", "failed", "", "mx", "451 busy"},
                      {"c@x", "failed", "", "", ""},
                      {"d@x", "delayed", "", "", ""},
                      {"e@x", "failed", "5.7", "mx", "554 5.7.1 relay denied"},
                      {"f@x", "failed", "", "mx", "550 4.1.1 class disagrees"}};
  auto parsed = parse_bounce(build_bounce(input));
  ASSERT_EQ(parsed.parts.size(), 3u);
  auto groups = status_groups(parsed.parts[1].content);
  ASSERT_EQ(groups.size(), 7u);
  EXPECT_EQ(one(groups[1], "status"), "5.0.0");
  EXPECT_EQ(one(groups[2], "status"), "4.0.0");
  EXPECT_EQ(one(groups[3], "status"), "5.0.0");
  EXPECT_EQ(one(groups[4], "status"), "4.0.0");
  EXPECT_EQ(one(groups[5], "status"), "5.7.1") << "malformed status replaced";
  EXPECT_EQ(one(groups[6], "status"), "5.0.0") << "an enhanced code of another class is ignored";
}

TEST(BounceMessage, LongEightBitDiagnosticIsCleanedFoldedAndCut) {
  auto input = three_recipients();
  std::string diagnostic = "550 5.7.1 ";
  for (int i = 0; i < 400; ++i) diagnostic += "w\xc3\xa9rd ";  // UTF-8 "wérd"
  diagnostic += std::string(3000, 'x');                        // one unbreakable word
  input.recipients[0].diagnostic = diagnostic;
  input.recipients[1].address = "caf\xc3\xa9@y.example";
  input.recipients[2].diagnostic =
      "451 line\r\nbreak\tand\x01"
      "control";
  input.original_headers = "Subject: r\xc3\xa9sum\xc3\xa9\r\nX-Long: " + std::string(2000, 'y') +
                           "\r\nX-Bare: lf\nX-Last: no line end";
  auto message = build_bounce(input);
  expect_clean_octets(message);
  auto parsed = parse_bounce(message);
  ASSERT_EQ(parsed.parts.size(), 3u);
  auto groups = status_groups(parsed.parts[1].content);
  ASSERT_EQ(groups.size(), 4u);
  auto code = one(groups[1], "diagnostic-code");
  EXPECT_TRUE(code.starts_with("smtp; 550 5.7.1 w??rd w??rd")) << code.substr(0, 60);
  EXPECT_TRUE(code.ends_with("...")) << "cut, and marked as cut";
  EXPECT_NE(parsed.parts[1].content.find("\r\n w??rd"), std::string::npos) << "folded at spaces";
  EXPECT_EQ(one(groups[2], "final-recipient"), "rfc822; caf??@y.example");
  EXPECT_EQ(one(groups[3], "diagnostic-code"), "smtp; 451 line  break and control");
  const auto& headers = parsed.parts[2].content;
  EXPECT_TRUE(headers.starts_with("Subject: r??sum??\r\n")) << headers.substr(0, 40);
  EXPECT_NE(headers.find("X-Bare: lf\r\nX-Last: no line end\r\n"), std::string::npos);
}

TEST(BounceMessage, BoundaryNeverOccursInContent) {
  auto input = three_recipients();
  // The boundary the builder would derive first, planted in every part it could collide in.
  auto first = parse_bounce(build_bounce(input)).boundary;
  ASSERT_FALSE(first.empty());
  input.original_headers += "X-Trap: --" + first + "\r\n";
  input.recipients[0].diagnostic = "550 " + first;
  input.reason = first + "_1";
  auto message = build_bounce(input);
  auto parsed = parse_bounce(message);
  EXPECT_NE(parsed.boundary, first);
  ASSERT_EQ(parsed.parts.size(), 3u);
  for (const auto& part : parsed.parts)
    EXPECT_EQ(part.content.find(parsed.boundary), std::string::npos);
  EXPECT_NE(parsed.parts[2].content.find("X-Trap: --" + first), std::string::npos);
}

TEST(BounceMessage, DifferentQueueIdsGetDifferentBoundariesAndIds) {
  auto a = three_recipients();
  auto b = three_recipients();
  b.queue_id = "0000018F3A2B4C5D-00013";
  auto pa = parse_bounce(build_bounce(a));
  auto pb = parse_bounce(build_bounce(b));
  EXPECT_NE(pa.boundary, pb.boundary);
  EXPECT_NE(one(pa.headers, "message-id"), one(pb.headers, "message-id"));
}

// ---- header_section ----

TEST(BounceHeaderSection, StopsAtTheFirstEmptyLine) {
  EXPECT_EQ(header_section("A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore\r\n"), "A: 1\r\nB: 2\r\n");
  EXPECT_EQ(header_section("A: 1\nB: 2\n\nbody\n"), "A: 1\nB: 2\n");
  EXPECT_EQ(header_section("\r\nbody only\r\n"), "");
  EXPECT_EQ(header_section(""), "");
}

TEST(BounceHeaderSection, WholeBodyWithoutEmptyLine) {
  EXPECT_EQ(header_section("A: 1\r\nB: 2\r\n"), "A: 1\r\nB: 2\r\n");
  EXPECT_EQ(header_section("A: 1\r\nB: 2"), "A: 1\r\nB: 2");
}

TEST(BounceHeaderSection, CappedAtALineEnd) {
  std::string body = "A: 1\r\nB: 22\r\nC: 333\r\n\r\nbody";
  EXPECT_EQ(header_section(body, 1000), "A: 1\r\nB: 22\r\nC: 333\r\n");
  EXPECT_EQ(header_section(body, 21), "A: 1\r\nB: 22\r\nC: 333\r\n");
  EXPECT_EQ(header_section(body, 20), "A: 1\r\nB: 22\r\n");
  EXPECT_EQ(header_section(body, 14), "A: 1\r\nB: 22\r\n");
  EXPECT_EQ(header_section(body, 13), "A: 1\r\nB: 22\r\n");
  EXPECT_EQ(header_section(body, 12), "A: 1\r\n");
  EXPECT_EQ(header_section(body, 5), "");
  for (std::size_t max = 0; max < 40; ++max) {
    auto section = header_section(body, max);
    EXPECT_LE(section.size(), max);
    EXPECT_TRUE(section.empty() || section.ends_with("\n")) << max;
  }
}

// ---- is_bounce ----

TEST(BounceDetection, NullSenderIsNeverBounced) {
  EXPECT_TRUE(is_bounce("", "Subject: hi\r\n"));
  EXPECT_TRUE(is_bounce("", ""));
}

TEST(BounceDetection, DeliveryReportIsNotBounced) {
  EXPECT_TRUE(is_bounce("someone@x",
                        "Subject: x\r\nContent-Type: multipart/report; "
                        "report-type=delivery-status;\r\n\tboundary=\"b\"\r\n"));
  EXPECT_TRUE(is_bounce("someone@x",
                        "content-type: Multipart/Report; boundary=\"b\";\r\n"
                        " Report-Type=\"Delivery-Status\"\r\n"));
  // Our own bounce, fed back in.
  auto own = build_bounce(three_recipients());
  EXPECT_TRUE(is_bounce("postmaster@elsewhere", header_section(own)));
}

TEST(BounceDetection, OtherReportsAndOrdinaryMailAreBounced) {
  EXPECT_FALSE(is_bounce("a@x", "Subject: hi\r\nContent-Type: text/plain\r\n"));
  EXPECT_FALSE(is_bounce("a@x",
                         "Content-Type: multipart/report; report-type=disposition-notification;"
                         " boundary=b\r\n"))
      << "a read receipt (MDN) is not a DSN";
  EXPECT_FALSE(is_bounce("a@x", "Subject: report-type=delivery-status\r\n"));
  EXPECT_FALSE(is_bounce("a@x", "Auto-Submitted: auto-replied\r\nFrom: a@x\r\n"))
      << "an ordinary vacation reply from a person";
  EXPECT_FALSE(is_bounce("a@x", "Auto-Submitted: no\r\nFrom: MAILER-DAEMON@x\r\n"));
}

TEST(BounceDetection, AutoRepliedFromMailerDaemon) {
  EXPECT_TRUE(is_bounce("a@x",
                        "From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\n"
                        "Auto-Submitted: auto-replied\r\n"));
  EXPECT_TRUE(is_bounce("mailer-daemon@mx.example", "auto-submitted: Auto-Replied (failure)\r\n"));
}

}  // namespace
