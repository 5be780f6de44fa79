// The spool's on-disk record format: message headers and delivery state files round trip,
// and every way a file can be cut short or damaged is an error, never a wrong value.
#include "portrelay/spool/spool_record.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

namespace {

using portrelay::spool::check_complete;
using portrelay::spool::DeliveryState;
using portrelay::spool::encode_header;
using portrelay::spool::encode_state;
using portrelay::spool::Envelope;
using portrelay::spool::kEndMarker;
using portrelay::spool::parse_header;
using portrelay::spool::parse_state;
using portrelay::spool::RecipientState;
using portrelay::spool::RecipientStatus;
using portrelay::spool::RecordLayout;

Envelope sample_envelope() {
  Envelope envelope;
  envelope.id = "0000018F3A2B4C5D-00012";
  envelope.arrival_ms = 1'717'171'717'123;
  envelope.sender = "app@vm.example";
  envelope.parameters = {"BODY=8BITMIME", "SIZE=1234", "RET=HDRS"};
  envelope.recipients = {"a@example.com", "\"john doe\"@example.org", "\"x  y z\"@[192.0.2.1]"};
  return envelope;
}

void expect_same_envelope(const Envelope& actual, const Envelope& expected) {
  EXPECT_EQ(actual.id, expected.id);
  EXPECT_EQ(actual.arrival_ms, expected.arrival_ms);
  EXPECT_EQ(actual.sender, expected.sender);
  EXPECT_EQ(actual.parameters, expected.parameters);
  EXPECT_EQ(actual.recipients, expected.recipients);
}

DeliveryState sample_state() {
  DeliveryState state;
  state.attempts = 3;
  state.next_attempt_ms = 1'717'171'999'000;
  state.last_error = "451 4.3.0 try again later, mailbox busy";
  state.recipients = {{RecipientStatus::Delivered, "250 2.0.0 Ok: queued as 4Vx"},
                      {RecipientStatus::Pending, "452 4.2.2 mailbox full"},
                      {RecipientStatus::Bounced, "550 5.1.1 <c@x>: unknown user"},
                      {RecipientStatus::Pending, ""}};
  return state;
}

// ---- message header ----

TEST(SpoolRecordHeader, RoundTripWithParametersAndQuotedRecipients) {
  auto envelope = sample_envelope();
  auto header = encode_header(envelope, 4096);
  auto parsed = parse_header(header + "x");
  ASSERT_TRUE(parsed) << parsed.error().message;
  expect_same_envelope(parsed->envelope, envelope);
  EXPECT_EQ(parsed->body_size, 4096u);
  EXPECT_EQ(parsed->body_offset, header.size());
}

TEST(SpoolRecordHeader, RoundTripNullSenderNoParametersOneRecipient) {
  Envelope envelope;
  envelope.id = "q1";
  envelope.arrival_ms = 0;
  envelope.sender = "";
  envelope.recipients = {"postmaster@example.net"};
  auto header = encode_header(envelope, 0);
  auto parsed = parse_header(header + std::string(kEndMarker));
  ASSERT_TRUE(parsed) << parsed.error().message;
  expect_same_envelope(parsed->envelope, envelope);
  EXPECT_TRUE(parsed->envelope.sender.empty()) << "the null reverse path stays null";
  EXPECT_EQ(parsed->body_size, 0u);
}

TEST(SpoolRecordHeader, QuotedSenderWithSpacesRoundTrips) {
  auto envelope = sample_envelope();
  envelope.sender = "\"first last\"@example.com";
  auto parsed = parse_header(encode_header(envelope, 1) + "b");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->envelope.sender, envelope.sender);
}

TEST(SpoolRecordHeader, HeaderPlusBodyGivesBodyPosition) {
  auto envelope = sample_envelope();
  const std::string body = "Subject: hi\r\n\r\nline one\r\n.dot stays\r\n";
  auto header = encode_header(envelope, body.size());
  const std::string file = header + body + std::string(kEndMarker);
  auto parsed = parse_header(file);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->body_offset, header.size());
  EXPECT_EQ(parsed->body_size, body.size());
  EXPECT_EQ(file.substr(parsed->body_offset, parsed->body_size), body);
  EXPECT_EQ(parsed->file_size(), file.size());
  auto complete = check_complete(*parsed, file.size(), file.substr(file.size() - 16));
  EXPECT_TRUE(complete) << complete.error().message;
}

TEST(SpoolRecordHeader, EveryTruncationIsAnError) {
  auto header = encode_header(sample_envelope(), 10);
  ASSERT_TRUE(parse_header(header));
  for (std::size_t length = 0; length < header.size(); ++length) {
    auto parsed = parse_header(header.substr(0, length));
    EXPECT_FALSE(parsed) << "prefix of " << length << " of " << header.size()
                         << " octets parsed as ok";
  }
}

TEST(SpoolRecordHeader, EveryCorruptOctetIsAnError) {
  const std::string body = "0123456789";
  auto header = encode_header(sample_envelope(), body.size());
  // Each mask turns the octet into a different one: a low bit, case, the high bit, and a
  // newline where there was none (or a letter where there was one).
  for (std::size_t position = 0; position < header.size(); ++position) {
    for (unsigned char mask : {0x01, 0x20, 0x80, 0xff}) {
      std::string damaged = header;
      damaged[position] = static_cast<char>(damaged[position] ^ mask);
      auto parsed = parse_header(damaged + body);
      EXPECT_FALSE(parsed) << "octet " << position << " ('" << header[position] << "') ^ "
                           << int(mask) << " parsed as ok";
    }
    std::string newline = header;
    newline[position] = newline[position] == '\n' ? 'a' : '\n';
    EXPECT_FALSE(parse_header(newline + body)) << "octet " << position << " replaced";
  }
}

TEST(SpoolRecordHeader, CorruptEnvelopeSaysBadChecksum) {
  auto header = encode_header(sample_envelope(), 10);
  auto at = header.find("john");
  ASSERT_NE(at, std::string::npos);
  header[at] = 'J';
  auto parsed = parse_header(header);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("bad checksum"), std::string::npos)
      << parsed.error().message;
}

TEST(SpoolRecordHeader, WrongMagicIsNotASpoolFile) {
  auto header = encode_header(sample_envelope(), 10);
  for (std::string other : {std::string("portrelay-spool 2\n"), std::string("portrelay-state 1\n"),
                            std::string("PORTRELAY-SPOOL 1\n")}) {
    std::string damaged = other + header.substr(other.size());
    auto parsed = parse_header(damaged);
    ASSERT_FALSE(parsed) << other;
    EXPECT_NE(parsed.error().message.find("not a portrelay"), std::string::npos)
        << parsed.error().message;
  }
  EXPECT_FALSE(parse_header("From: someone\r\n\r\nhello\r\n"));
  // A state file is no message file.
  EXPECT_FALSE(parse_header(encode_state(sample_state())));
}

// Builds a header by hand with a valid checksum, so only the field check can refuse it.
std::string checked_header(const std::string& fields) {
  std::string text = "portrelay-spool 1\n" + fields;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(portrelay::spool::fnv1a64(text)));
  return text + "check " + hex + "\n\n";
}

TEST(SpoolRecordHeader, HandBuiltHeaderMatchesEncoder) {
  Envelope envelope;
  envelope.id = "i";
  envelope.arrival_ms = 5;
  envelope.sender = "s@x";
  envelope.recipients = {"r@x"};
  EXPECT_EQ(checked_header("id i\narrival 5\nsender s@x\nrcpt r@x\nbody 3\n"),
            encode_header(envelope, 3))
      << "the helper below must build what the encoder builds";
}

// [rewrite]'s original sender: written only when the sender was rewritten, so files of a
// relay without [rewrite] stay as they were, and files without the line (written before
// it existed) read as "not rewritten" and bounce to their sender.
TEST(SpoolRecordHeader, OriginalSenderRoundTripsAndIsTheBounceAddress) {
  auto envelope = sample_envelope();
  envelope.sender = "alerts@example.com";
  envelope.original_sender = "root@vm-1234.internal";
  envelope.route = "shop";
  const std::string header = encode_header(envelope, 7);
  EXPECT_NE(header.find("\noriginal root@vm-1234.internal\n"), std::string::npos) << header;
  auto parsed = parse_header(header + "x");
  ASSERT_TRUE(parsed) << parsed.error().message;
  expect_same_envelope(parsed->envelope, envelope);
  EXPECT_EQ(parsed->envelope.original_sender, "root@vm-1234.internal");
  EXPECT_EQ(parsed->envelope.route, "shop");
  EXPECT_EQ(parsed->envelope.bounce_address(), "root@vm-1234.internal");
}

TEST(SpoolRecordHeader, AFileWithoutAnOriginalLineBouncesToItsSender) {
  auto envelope = sample_envelope();
  EXPECT_EQ(encode_header(envelope, 7).find("original"), std::string::npos);
  auto parsed =
      parse_header(checked_header("id i\narrival 5\nsender s@x\nrcpt r@x\nbody 3\n") + "abc");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->envelope.original_sender, "");
  EXPECT_EQ(parsed->envelope.bounce_address(), "s@x");
  auto bare = parse_header(
      checked_header("id i\narrival 5\nsender s@x\noriginal root\nrcpt r@x\nbody 3\n") + "abc");
  ASSERT_TRUE(bare) << bare.error().message;
  EXPECT_EQ(bare->envelope.bounce_address(), "root");
}

TEST(SpoolRecordHeader, AnEmptyOriginalSenderIsAnError) {
  auto parsed = parse_header(
      checked_header("id i\narrival 5\nsender s@x\noriginal \nrcpt r@x\nbody 3\n") + "abc");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("original"), std::string::npos) << parsed.error().message;
}

TEST(SpoolRecordHeader, MissingFieldsAreErrors) {
  const std::vector<std::string> incomplete = {
      "arrival 5\nsender s@x\nrcpt r@x\nbody 3\n",       // no id
      "id \narrival 5\nsender s@x\nrcpt r@x\nbody 3\n",  // empty id
      "id i\nsender s@x\nrcpt r@x\nbody 3\n",            // no arrival
      "id i\narrival x5\nsender s@x\nrcpt r@x\nbody 3\n",
      "id i\narrival 5\nrcpt r@x\nbody 3\n",      // no sender line at all
      "id i\narrival 5\nsender s@x\nrcpt r@x\n",  // no body
      "id i\narrival 5\nsender s@x\nrcpt r@x\nbody -3\n",
      "id i\narrival 5\nsender s@x\nrcpt r@x\nbody 3x\n",
      "id i\narrival 5\nsender s@x\nbody 3\n",  // zero recipients
      "id i\narrival 5\nsender s@x\nrcpt r@x\nbody 3\nfrobnicate 1\n",
      "id i\narrival 5\nsender s@x\nrcpt r@x\nbody 3\nnospace\n",
  };
  for (const auto& fields : incomplete) {
    auto parsed = parse_header(checked_header(fields) + "abc");
    EXPECT_FALSE(parsed) << fields;
  }
  auto zero = parse_header(checked_header("id i\narrival 5\nsender s@x\nbody 3\n") + "abc");
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().message, "incomplete header");
}

TEST(SpoolRecordHeader, MissingBlankLineIsAnError) {
  auto header = encode_header(sample_envelope(), 3);
  ASSERT_EQ(header.back(), '\n');
  auto parsed = parse_header(header.substr(0, header.size() - 1) + "abc");
  EXPECT_FALSE(parsed);
}

TEST(SpoolRecordHeader, BodySizeThatOverflowsTheFileSizeIsAnError) {
  // A header whose declared body size makes file_size() wrap around would let a short file
  // pass check_complete.
  auto huge = std::numeric_limits<std::uint64_t>::max();
  auto header = encode_header(sample_envelope(), huge);
  auto parsed = parse_header(header);
  if (parsed) {
    // Had it parsed, a file of header + "\n.end\n" minus one octet must still not pass.
    auto size = header.size() + kEndMarker.size() - 1;
    EXPECT_FALSE(check_complete(*parsed, size, std::string(kEndMarker)))
        << "file_size() wrapped around to " << parsed->file_size();
  }
  EXPECT_FALSE(parsed) << "a body larger than any file must be refused";
}

// ---- check_complete ----

struct WholeFile {
  RecordLayout layout;
  std::string file;
};

WholeFile whole_file(const std::string& body) {
  auto header = encode_header(sample_envelope(), body.size());
  WholeFile whole{RecordLayout{}, header + body + std::string(kEndMarker)};
  auto parsed = parse_header(whole.file);
  EXPECT_TRUE(parsed);
  if (parsed) whole.layout = *parsed;
  return whole;
}

TEST(SpoolRecordComplete, WholeFilePasses) {
  auto whole = whole_file("Subject: x\r\n\r\nbody\r\n");
  EXPECT_TRUE(check_complete(whole.layout, whole.file.size(), whole.file));
  EXPECT_TRUE(check_complete(whole.layout, whole.file.size(), kEndMarker));
}

TEST(SpoolRecordComplete, TruncatedFileIsAnError) {
  auto whole = whole_file("Subject: x\r\n\r\nbody\r\n");
  for (std::size_t cut = 1; cut <= whole.layout.body_size + kEndMarker.size(); ++cut) {
    std::string file = whole.file.substr(0, whole.file.size() - cut);
    auto complete = check_complete(whole.layout, file.size(), file);
    ASSERT_FALSE(complete) << "cut " << cut;
    EXPECT_EQ(complete.error().message, "truncated spool file");
  }
}

TEST(SpoolRecordComplete, LongerFileIsAnError) {
  auto whole = whole_file("body\r\n");
  std::string file = whole.file + "extra" + std::string(kEndMarker);
  auto complete = check_complete(whole.layout, file.size(), file);
  ASSERT_FALSE(complete);
  EXPECT_EQ(complete.error().message, "spool file longer than its header says");
}

TEST(SpoolRecordComplete, MissingEndMarkerIsAnError) {
  auto whole = whole_file("body\r\n");
  std::string file = whole.file;
  for (std::size_t i = 1; i <= kEndMarker.size(); ++i) {
    std::string damaged = file;
    damaged[damaged.size() - i] = 'X';
    auto complete = check_complete(whole.layout, damaged.size(), damaged);
    ASSERT_FALSE(complete) << i;
    EXPECT_EQ(complete.error().message, "missing end marker");
  }
  // Same size, but the body ran into the marker's place (zeros from a torn write).
  std::string zeros =
      file.substr(0, file.size() - kEndMarker.size()) + std::string(kEndMarker.size(), '\0');
  EXPECT_FALSE(check_complete(whole.layout, zeros.size(), zeros));
  EXPECT_FALSE(check_complete(whole.layout, file.size(), "end\n")) << "tail too short";
  EXPECT_FALSE(check_complete(whole.layout, file.size(), "")) << "no tail";
}

// ---- delivery state ----

void expect_same_state(const DeliveryState& actual, const DeliveryState& expected) {
  EXPECT_EQ(actual.attempts, expected.attempts);
  EXPECT_EQ(actual.next_attempt_ms, expected.next_attempt_ms);
  EXPECT_EQ(actual.last_error, expected.last_error);
  ASSERT_EQ(actual.recipients.size(), expected.recipients.size());
  for (std::size_t i = 0; i < expected.recipients.size(); ++i) {
    EXPECT_EQ(actual.recipients[i].status, expected.recipients[i].status) << i;
    EXPECT_EQ(actual.recipients[i].reply, expected.recipients[i].reply) << i;
  }
}

TEST(SpoolRecordState, RoundTrip) {
  auto state = sample_state();
  auto parsed = parse_state(encode_state(state), state.recipients.size());
  ASSERT_TRUE(parsed) << parsed.error().message;
  expect_same_state(*parsed, state);
  EXPECT_TRUE(*parsed == state);
}

TEST(SpoolRecordState, RoundTripNothingTriedYet) {
  DeliveryState state;
  state.recipients.resize(2);
  auto parsed = parse_state(encode_state(state), 2);
  ASSERT_TRUE(parsed) << parsed.error().message;
  expect_same_state(*parsed, state);
}

TEST(SpoolRecordState, RecipientCountMismatchIsAnError) {
  auto state = sample_state();
  auto text = encode_state(state);
  for (std::size_t count : {std::size_t{0}, std::size_t{3}, std::size_t{5}}) {
    auto parsed = parse_state(text, count);
    ASSERT_FALSE(parsed) << count;
    EXPECT_EQ(parsed.error().message, "recipient count mismatch");
  }
}

TEST(SpoolRecordState, EveryTruncationIsAnError) {
  auto text = encode_state(sample_state());
  for (std::size_t length = 0; length < text.size(); ++length)
    EXPECT_FALSE(parse_state(text.substr(0, length), 4)) << "prefix of " << length;
}

TEST(SpoolRecordState, EveryCorruptOctetIsAnError) {
  auto text = encode_state(sample_state());
  for (std::size_t position = 0; position < text.size(); ++position) {
    for (unsigned char mask : {0x01, 0x20, 0x80, 0xff}) {
      std::string damaged = text;
      damaged[position] = static_cast<char>(damaged[position] ^ mask);
      EXPECT_FALSE(parse_state(damaged, 4))
          << "octet " << position << " ('" << text[position] << "') ^ " << int(mask);
    }
  }
}

TEST(SpoolRecordState, TrailingDataIsAnError) {
  auto text = encode_state(sample_state());
  EXPECT_FALSE(parse_state(text + "x", 4));
  EXPECT_FALSE(parse_state(text + text, 4));
}

TEST(SpoolRecordState, ReplyTextCannotForgeStateLines) {
  // Reply texts come from upstream servers. One carrying a line end must not add or
  // override fields of the state file (attempts, next attempt, a recipient's status).
  DeliveryState state;
  state.attempts = 7;
  state.next_attempt_ms = 1000;
  state.last_error = "451 busy\nattempts 0\nnext 99999999999999";
  state.recipients = {{RecipientStatus::Pending, "450 later\r\nrcpt delivered forged"}};
  auto parsed = parse_state(encode_state(state), 1);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->attempts, 7u);
  EXPECT_EQ(parsed->next_attempt_ms, 1000);
  ASSERT_EQ(parsed->recipients.size(), 1u);
  EXPECT_EQ(parsed->recipients[0].status, RecipientStatus::Pending);
  EXPECT_EQ(parsed->last_error.find('\n'), std::string::npos);
  EXPECT_NE(parsed->last_error.find("451 busy"), std::string::npos);
  EXPECT_EQ(parsed->recipients[0].reply.find_first_of("\r\n"), std::string::npos);
}

std::string checked_state(const std::string& fields) {
  std::string text = "portrelay-state 1\n" + fields;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(portrelay::spool::fnv1a64(text)));
  return text + "check " + hex + "\n";
}

TEST(SpoolRecordState, UnknownStatusOrFieldIsAnError) {
  const std::string good = "attempts 1\nnext 0\nerror \nrcpt pending \n";
  ASSERT_TRUE(parse_state(checked_state(good), 1)) << "the hand-built state is valid";
  for (std::string fields : {std::string("attempts 1\nnext 0\nerror \nrcpt sent \n"),
                             std::string("attempts 1\nnext 0\nerror \nrcpt pending\n"),
                             std::string("attempts -1\nnext 0\nerror \nrcpt pending \n"),
                             std::string("attempts 1\nnext soon\nerror \nrcpt pending \n"),
                             std::string("attempts 1\nnext 0\nerror \nrcpt pending \nx 1\n")}) {
    EXPECT_FALSE(parse_state(checked_state(fields), 1)) << fields;
  }
  EXPECT_FALSE(parse_state("portrelay-state 1\ncheck 0000000000000000\n", 0))
      << "checksum of the magic alone is not zero";
  EXPECT_FALSE(parse_state(encode_header(sample_envelope(), 1), 3)) << "a message header";
}

}  // namespace
