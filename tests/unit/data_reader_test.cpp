#include "portrelay/smtp/data_reader.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace portrelay::smtp {
namespace {

using Violation = DataReader::Violation;

struct Decoded {
  std::string out;
  std::size_t consumed = 0;
  bool finished = false;
  Violation violation = Violation::None;
  std::uint64_t content_size = 0;

  bool operator==(const Decoded&) const = default;
};

// Feeds `input` split at `cuts` (sorted offsets), the way a socket would deliver it.
Decoded decode_split(std::string_view input, const std::vector<std::size_t>& cuts,
                     DataReader::Limits limits = {}) {
  DataReader reader(limits);
  Decoded result;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    std::size_t end = i < cuts.size() ? cuts[i] : input.size();
    std::string_view chunk = input.substr(start, end - start);
    std::size_t used = reader.feed(chunk, result.out);
    result.consumed += used;
    // The reader may only stop early because it found the end marker.
    if (used != chunk.size()) {
      EXPECT_TRUE(reader.finished());
      break;
    }
    start = end;
  }
  result.finished = reader.finished();
  result.violation = reader.violation();
  result.content_size = reader.content_size();
  return result;
}

Decoded decode(std::string_view input, DataReader::Limits limits = {}) {
  return decode_split(input, {}, limits);
}

// Decodes in one shot, byte by byte and in random splits; all must agree.
Decoded decode_every_way(std::string_view input, DataReader::Limits limits = {},
                         unsigned seed = 1) {
  Decoded one_shot = decode(input, limits);
  std::vector<std::size_t> every_byte;
  for (std::size_t i = 1; i < input.size(); ++i) every_byte.push_back(i);
  EXPECT_EQ(decode_split(input, every_byte, limits), one_shot) << "byte by byte";
  std::mt19937 rng(seed);
  for (int round = 0; round < 20 && input.size() > 1; ++round) {
    std::vector<std::size_t> cuts;
    std::uniform_int_distribution<std::size_t> pick(1, input.size() - 1);
    std::size_t count = pick(rng) % 8 + 1;
    for (std::size_t i = 0; i < count; ++i) cuts.push_back(pick(rng));
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    EXPECT_EQ(decode_split(input, cuts, limits), one_shot) << "random split round " << round;
  }
  return one_shot;
}

TEST(DataReader, EmptyMessageEndsImmediately) {
  Decoded d = decode_every_way(".\r\n");
  EXPECT_TRUE(d.finished);
  EXPECT_EQ(d.out, "");
  EXPECT_EQ(d.consumed, 3u);
  EXPECT_EQ(d.violation, Violation::None);
  EXPECT_EQ(d.content_size, 0u);
}

TEST(DataReader, DecodesSimpleMessage) {
  const std::string input = "Subject: hi\r\n\r\nbody line\r\n.\r\n";
  Decoded d = decode_every_way(input);
  EXPECT_TRUE(d.finished);
  EXPECT_EQ(d.out, "Subject: hi\r\n\r\nbody line\r\n");
  EXPECT_EQ(d.consumed, input.size());
  EXPECT_EQ(d.violation, Violation::None);
  EXPECT_EQ(d.content_size, d.out.size());
}

TEST(DataReader, RemovesExactlyOneLeadingDot) {
  Decoded d = decode_every_way("..\r\n...x\r\n.a\r\nb.c\r\n .\r\n.\r\n");
  EXPECT_TRUE(d.finished);
  EXPECT_EQ(d.out, ".\r\n..x\r\na\r\nb.c\r\n .\r\n");
  EXPECT_EQ(d.violation, Violation::None);
}

TEST(DataReader, LeavesPipelinedBytesAfterEndMarker) {
  const std::string input = "hi\r\n.\r\nQUIT\r\n";
  Decoded d = decode_every_way(input);
  EXPECT_TRUE(d.finished);
  EXPECT_EQ(d.out, "hi\r\n");
  EXPECT_EQ(d.consumed, 7u);
  EXPECT_EQ(input.substr(d.consumed), "QUIT\r\n");
}

TEST(DataReader, ConsumesNothingOnceFinished) {
  DataReader reader({});
  std::string out;
  EXPECT_EQ(reader.feed(".\r\nMAIL", out), 3u);
  EXPECT_EQ(reader.feed("MAIL FROM:<a@b>\r\n", out), 0u);
  EXPECT_EQ(out, "");
  EXPECT_TRUE(reader.finished());
}

TEST(DataReader, UnterminatedDataIsNotFinished) {
  Decoded d = decode_every_way("hi\r\n.");
  EXPECT_FALSE(d.finished);
  EXPECT_EQ(d.out, "hi\r\n");
  EXPECT_EQ(d.consumed, 5u);
  Decoded no_crlf = decode_every_way("hi\r\n.\r");
  EXPECT_FALSE(no_crlf.finished);
  EXPECT_EQ(no_crlf.violation, Violation::None);
}

TEST(DataReader, DotLineInsideTextDoesNotEndData) {
  // "x.\r\n" and " .\r\n" are ordinary lines.
  Decoded d = decode_every_way("x.\r\n .\r\n");
  EXPECT_FALSE(d.finished);
  EXPECT_EQ(d.out, "x.\r\n .\r\n");
}

TEST(DataReader, CrAtChunkEndWaitsForNextByte) {
  DataReader reader({});
  std::string out;
  EXPECT_EQ(reader.feed("a\r", out), 2u);
  EXPECT_EQ(out, "a");
  EXPECT_EQ(reader.violation(), Violation::None);
  EXPECT_EQ(reader.feed("\n.\r", out), 3u);
  EXPECT_EQ(out, "a\r\n");
  EXPECT_FALSE(reader.finished());
  EXPECT_EQ(reader.feed("\n", out), 1u);
  EXPECT_TRUE(reader.finished());
  EXPECT_EQ(reader.violation(), Violation::None);
}

TEST(DataReader, CrAtChunkEndFollowedByOtherByteIsBareCr) {
  DataReader reader({});
  std::string out;
  reader.feed("a\r", out);
  EXPECT_EQ(reader.violation(), Violation::None);
  reader.feed("b\r\n", out);
  EXPECT_EQ(reader.violation(), Violation::BareCr);
  EXPECT_EQ(out, "a");
}

struct Smuggling {
  std::string_view sequence;
  Violation expected;
  const char* out_before_violation;
};

using namespace std::string_view_literals;

// End-of-data look-alikes that some receiver takes as the end of the message (SEC Consult's
// "SMTP smuggling" research, the smtpsmug tool's list, and the NUL variants for receivers
// that drop NUL octets). Each must neither end the data nor let the message through.
const Smuggling kSmugglingSequences[] = {
    {"\n.\n"sv, Violation::BareLf, "a"},
    {"\n.\r\n"sv, Violation::BareLf, "a"},
    {"\n.\r"sv, Violation::BareLf, "a"},
    {"\r.\r"sv, Violation::BareCr, "a"},
    {"\r.\r\n"sv, Violation::BareCr, "a"},
    {"\r.\n"sv, Violation::BareCr, "a"},
    {"\r\n.\n"sv, Violation::BareLf, "a\r\n"},
    {"\r\n.\r"sv, Violation::BareCr, "a\r\n"},
    {"\r\n.\r\r\n"sv, Violation::BareCr, "a\r\n"},
    {"\r\n.\n\r\n"sv, Violation::BareLf, "a\r\n"},
    {"\r\r\n.\r\r\n"sv, Violation::BareCr, "a"},
    {"\r\n\0.\r\n"sv, Violation::Nul, "a\r\n"},
    {"\r\n.\0\r\n"sv, Violation::Nul, "a\r\n"},
    {"\r\n\0.\0\r\n"sv, Violation::Nul, "a\r\n"},
    {"\r\n.\r\0\n"sv, Violation::BareCr, "a\r\n"},
    {"\r\0\n.\r\n"sv, Violation::BareCr, "a"},
    {"\0\n.\n"sv, Violation::Nul, "a"},
    {"\r\n\0.\n"sv, Violation::Nul, "a\r\n"},
    {"\r\n\0.\r"sv, Violation::Nul, "a\r\n"},
};

TEST(DataReader, SmugglingSequencesDoNotEndDataAndAreFlagged) {
  for (const Smuggling& c : kSmugglingSequences) {
    SCOPED_TRACE(testing::PrintToString(std::string(c.sequence)));
    const std::string hidden = "MAIL FROM:<evil@x.example>\r\nRCPT TO:<v@y.example>\r\nDATA\r\n";
    const std::string real_end = "\r\n.\r\n";
    const std::string input = "a" + std::string(c.sequence) + hidden + "x" + real_end + "NEXT";
    Decoded d = decode_every_way(input);
    EXPECT_TRUE(d.finished);
    EXPECT_EQ(d.consumed, input.size() - 4) << "must stop at the real <CRLF>.<CRLF> only";
    EXPECT_EQ(d.violation, c.expected);
    EXPECT_EQ(d.out, c.out_before_violation);

    // The sequence alone, near the end of the input, must not finish the data either (the
    // "x" settles a trailing CR, which may still be followed by its LF).
    Decoded alone = decode_every_way("a" + std::string(c.sequence) + "x");
    EXPECT_FALSE(alone.finished);
    EXPECT_EQ(alone.violation, c.expected);
  }
}

TEST(DataReader, NulAnywhereIsAViolation) {
  // Start of data, start of a line, after a stuffed dot, inside a line, before the CRLF.
  for (std::string_view input : {"\0\r\n.\r\n"sv, "ok\r\n\0x\r\n.\r\n"sv, "ok\r\n.\0\r\n.\r\n"sv,
                                 "ab\0cd\r\n.\r\n"sv, "abcd\0\r\n.\r\n"sv, "..\0\r\n.\r\n"sv}) {
    SCOPED_TRACE(testing::PrintToString(std::string(input)));
    Decoded d = decode_every_way(input);
    EXPECT_TRUE(d.finished);
    EXPECT_EQ(d.consumed, input.size());
    EXPECT_EQ(d.violation, Violation::Nul);
    EXPECT_EQ(d.out.find('\0'), std::string::npos);
  }
  // The real end marker after a NUL still ends the data, and nothing after it is content.
  Decoded d = decode_every_way("x\0y\r\n.\r\nQUIT\r\n"sv);
  EXPECT_TRUE(d.finished);
  EXPECT_EQ(d.consumed, 8u);
  EXPECT_EQ(d.out, "x");
}

TEST(DataReader, SmugglingAtVeryStartDoesNotEndData) {
  Decoded lf = decode_every_way(".\n");
  EXPECT_FALSE(lf.finished);
  EXPECT_EQ(lf.violation, Violation::BareLf);
  Decoded cr = decode_every_way(".\r.\r\n");
  EXPECT_FALSE(cr.finished);
  EXPECT_EQ(cr.violation, Violation::BareCr);
  Decoded leading_lf = decode_every_way("\n.\r\n");
  EXPECT_FALSE(leading_lf.finished);
  EXPECT_EQ(leading_lf.violation, Violation::BareLf);
}

TEST(DataReader, BareLfAndCrInsideLines) {
  Decoded lf = decode_every_way("ab\ncd\r\n.\r\n");
  EXPECT_TRUE(lf.finished);
  EXPECT_EQ(lf.violation, Violation::BareLf);
  EXPECT_EQ(lf.out, "ab");
  Decoded cr = decode_every_way("ab\rcd\r\n.\r\n");
  EXPECT_TRUE(cr.finished);
  EXPECT_EQ(cr.violation, Violation::BareCr);
  EXPECT_EQ(cr.out, "ab");
  Decoded crcr = decode_every_way("ab\r\r\n.\r\n");
  EXPECT_TRUE(crcr.finished);
  EXPECT_EQ(crcr.violation, Violation::BareCr);
}

TEST(DataReader, KeepsCountingAfterViolation) {
  Decoded d = decode_every_way("a\nbcd\r\nef\r\n.\r\n");
  EXPECT_TRUE(d.finished);
  EXPECT_EQ(d.violation, Violation::BareLf);
  EXPECT_EQ(d.out, "a");
  EXPECT_EQ(d.content_size, 11u);  // "a" "\n" "bcd\r\n" "ef\r\n"
}

TEST(DataReader, LineLengthBoundary) {
  const std::string ok_line(998, 'x');
  Decoded ok = decode_every_way(ok_line + "\r\n.\r\n");
  EXPECT_EQ(ok.violation, Violation::None);
  EXPECT_EQ(ok.out, ok_line + "\r\n");

  const std::string long_line(999, 'y');
  Decoded too_long = decode_every_way("a\r\n" + long_line + "\r\nz\r\n.\r\n");
  EXPECT_TRUE(too_long.finished);
  EXPECT_EQ(too_long.violation, Violation::LineTooLong);
  EXPECT_EQ(too_long.out, "a\r\n" + std::string(998, 'y'));
  EXPECT_EQ(too_long.content_size, 3u + 1001u + 3u);
}

TEST(DataReader, StuffedDotDoesNotCountTowardsLineLength) {
  const std::string line = "." + std::string(997, 'x');  // 998 octets once decoded
  Decoded d = decode_every_way("." + line + "\r\n.\r\n");
  EXPECT_EQ(d.violation, Violation::None);
  EXPECT_EQ(d.out, line + "\r\n");
}

TEST(DataReader, CustomLineLimit) {
  DataReader::Limits limits;
  limits.max_line_length = 10;  // 8 octets + CRLF
  EXPECT_EQ(decode_every_way("12345678\r\n.\r\n", limits).violation, Violation::None);
  Decoded d = decode_every_way("123456789\r\n.\r\n", limits);
  EXPECT_EQ(d.violation, Violation::LineTooLong);
  EXPECT_EQ(d.out, "12345678");
}

TEST(DataReader, TooBigBoundary) {
  DataReader::Limits limits;
  limits.max_message_size = 10;
  Decoded exact = decode_every_way("12345678\r\n.\r\n", limits);
  EXPECT_TRUE(exact.finished);
  EXPECT_EQ(exact.violation, Violation::None);
  EXPECT_EQ(exact.out, "12345678\r\n");
  EXPECT_EQ(exact.content_size, 10u);

  // One octet more: the CRLF crosses the limit, so it is not emitted.
  Decoded over = decode_every_way("123456789\r\n.\r\n", limits);
  EXPECT_TRUE(over.finished);
  EXPECT_EQ(over.violation, Violation::TooBig);
  EXPECT_EQ(over.out, "123456789");
  EXPECT_EQ(over.content_size, 11u);

  Decoded much = decode_every_way("1234\r\n1234567890\r\nabc\r\n.\r\nQUIT", limits);
  EXPECT_TRUE(much.finished);
  EXPECT_EQ(much.violation, Violation::TooBig);
  EXPECT_EQ(much.out, "1234\r\n1234");
  EXPECT_EQ(much.content_size, 6u + 12u + 5u);
}

TEST(DataReader, OnlyFirstViolationIsRecorded) {
  DataReader::Limits limits;
  limits.max_message_size = 4;
  limits.max_line_length = 6;
  Decoded d = decode_every_way("ab\rcdefghijkl\nmno\r\n.\r\n", limits);
  EXPECT_TRUE(d.finished);
  EXPECT_EQ(d.violation, Violation::BareCr);
  EXPECT_EQ(d.out, "ab");
}

TEST(DataReader, CleanLinesBeforeAViolationInTheSameChunkAreKept) {
  // Whole clean lines are appended in one go; a later violation must not lose or reorder them.
  Decoded d = decode_every_way("ok\r\n.dot\r\n\r\nab\rcd\r\nlater\r\n.\r\n");
  EXPECT_TRUE(d.finished);
  EXPECT_EQ(d.violation, Violation::BareCr);
  EXPECT_EQ(d.out, "ok\r\ndot\r\n\r\nab");
  EXPECT_EQ(d.content_size, 4u + 5u + 2u + 7u + 7u);
}

TEST(DataReader, ManyBareCrsInOneLargeChunk) {
  // Each bare CR restarts the scan inside the line while the next LF is far away. Searching
  // for it again after every CR is quadratic: about 20 times slower here (Debug build).
  const std::size_t pairs = 256 * 1024;
  std::string input = "x";
  for (std::size_t i = 0; i < pairs; ++i) input += "\rx";
  input += "\r\n.\r\n";
  Decoded d = decode(input);
  EXPECT_TRUE(d.finished);
  EXPECT_EQ(d.consumed, input.size());
  EXPECT_EQ(d.violation, Violation::BareCr);
  EXPECT_EQ(d.out, "x");
  EXPECT_EQ(d.content_size, 1u + 2u * pairs + 2u);
}

TEST(DataReader, ViolationNames) {
  EXPECT_STREQ(to_string(Violation::None), "none");
  EXPECT_STREQ(to_string(Violation::BareLf), "bare_lf");
  EXPECT_STREQ(to_string(Violation::BareCr), "bare_cr");
  EXPECT_STREQ(to_string(Violation::Nul), "nul");
  EXPECT_STREQ(to_string(Violation::LineTooLong), "line_too_long");
  EXPECT_STREQ(to_string(Violation::TooBig), "too_big");
}

std::string random_content(std::mt19937& rng) {
  std::uniform_int_distribution<int> kind(0, 5);
  std::uniform_int_distribution<int> length(0, 40);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string content;
  int lines = std::uniform_int_distribution<int>(0, 30)(rng);
  for (int i = 0; i < lines; ++i) {
    std::string line;
    switch (kind(rng)) {
      case 0:
        break;  // empty line
      case 1:
        line = std::string(1 + length(rng) % 3, '.');
        break;
      case 2:
        line = "." + std::string(length(rng), 'd');
        break;
      case 3:
        line = std::string(998, 'L');
        line[0] = length(rng) % 2 ? '.' : 'L';
        break;
      default:
        for (int n = length(rng); n > 0; --n) {
          char c = static_cast<char>(byte(rng));
          // 8-bit and control bytes too, but not the line breaks or NUL, which are refused.
          line.push_back(c == '\r' || c == '\n' || c == '\0' ? '.' : c);
        }
    }
    content += line + "\r\n";
  }
  return content;
}

TEST(DataReader, RoundTripsDotStufferOutput) {
  std::mt19937 rng(42);
  for (int round = 0; round < 60; ++round) {
    SCOPED_TRACE(round);
    const std::string content = random_content(rng);
    DotStuffer stuffer;
    std::string wire;
    std::size_t split = content.empty() ? 0 : rng() % content.size();
    stuffer.encode(std::string_view(content).substr(0, split), wire);
    stuffer.encode(std::string_view(content).substr(split), wire);
    stuffer.finish(wire);
    wire += "QUIT\r\n";

    Decoded d = decode_every_way(wire, {}, round);
    EXPECT_TRUE(d.finished);
    EXPECT_EQ(d.violation, Violation::None);
    EXPECT_EQ(d.out, content);
    EXPECT_EQ(d.consumed, wire.size() - 6);
    EXPECT_EQ(d.content_size, content.size());
  }
}

TEST(DataReader, RandomInputIsChunkingIndependentAndNeverEmitsBareLineBreaks) {
  std::mt19937 rng(7);
  const char alphabet[] = {'\r', '\n', '.', 'a', '\0'};
  for (int round = 0; round < 300; ++round) {
    std::string input;
    for (int n = rng() % 24; n > 0; --n) input.push_back(alphabet[rng() % 5]);
    DataReader::Limits limits;
    limits.max_line_length = 2 + rng() % 6;
    limits.max_message_size = rng() % 16;
    Decoded d = decode_every_way(input, limits, round);
    ASSERT_EQ(d.out.find('\0'), std::string::npos) << testing::PrintToString(input);
    for (std::size_t i = 0; i < d.out.size(); ++i) {
      if (d.out[i] == '\n') {
        ASSERT_TRUE(i > 0 && d.out[i - 1] == '\r') << testing::PrintToString(input);
      }
      if (d.out[i] == '\r') {
        ASSERT_TRUE(i + 1 < d.out.size() && d.out[i + 1] == '\n') << testing::PrintToString(input);
      }
    }
  }
}

std::string stuff(const std::vector<std::string_view>& chunks) {
  DotStuffer stuffer;
  std::string out;
  for (std::string_view chunk : chunks) stuffer.encode(chunk, out);
  stuffer.finish(out);
  return out;
}

TEST(DotStuffer, EmptyContentIsJustTheTerminator) { EXPECT_EQ(stuff({}), ".\r\n"); }

TEST(DotStuffer, AddsCrlfWhenContentLacksIt) {
  EXPECT_EQ(stuff({"a\r\n"}), "a\r\n.\r\n");
  EXPECT_EQ(stuff({"a"}), "a\r\n.\r\n");
  EXPECT_EQ(stuff({"a\r\nb"}), "a\r\nb\r\n.\r\n");
}

TEST(DotStuffer, DoublesLeadingDots) {
  EXPECT_EQ(stuff({".a\r\n..\r\n.\r\nb.c\r\n"}), "..a\r\n...\r\n..\r\nb.c\r\n.\r\n");
  EXPECT_EQ(stuff({"."}), "..\r\n.\r\n");
}

TEST(DotStuffer, HandlesChunkBoundaries) {
  EXPECT_EQ(stuff({"x\r", "\n.y"}), "x\r\n..y\r\n.\r\n");
  EXPECT_EQ(stuff({"x\r\n", ".", "y\r\n"}), "x\r\n..y\r\n.\r\n");
  EXPECT_EQ(stuff({"x", "\r", "\n"}), "x\r\n.\r\n");

  const std::string content = ".a\r\n\r\n..b\r\nc.\r\n.";
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < content.size(); ++i)
    bytes.push_back(std::string_view(content).substr(i, 1));
  EXPECT_EQ(stuff(bytes), stuff({content}));
  EXPECT_EQ(stuff({content}), "..a\r\n\r\n...b\r\nc.\r\n..\r\n.\r\n");
}

TEST(DotStuffer, OnlyCrlfStartsALine) {
  // A bare LF is not a line break for the reader, so no dot is added after it.
  EXPECT_EQ(stuff({"a\n.b\r\n"}), "a\n.b\r\n.\r\n");
}

// The rule straight from RFC 5321 4.5.2, one byte at a time: a '.' that starts a line (the
// content start, or right after CRLF) gets another '.' in front.
std::string stuff_reference(std::string_view content) {
  std::string out;
  for (std::size_t i = 0; i < content.size(); ++i) {
    const bool line_start = i == 0 || (i >= 2 && content.substr(i - 2, 2) == "\r\n");
    if (line_start && content[i] == '.') out += '.';
    out += content[i];
  }
  if (!content.empty() && !content.ends_with("\r\n")) out += "\r\n";
  return out + ".\r\n";
}

TEST(DotStuffer, RandomContentAndSplitsMatchTheByteWiseRule) {
  std::mt19937 rng(11);
  const char alphabet[] = {'\r', '\n', '.', 'a'};
  for (int round = 0; round < 500; ++round) {
    std::string content;
    for (int n = rng() % 32; n > 0; --n) content.push_back(alphabet[rng() % 4]);
    std::vector<std::string_view> chunks;
    std::string_view rest = content;
    while (!rest.empty()) {
      std::size_t size = rng() % 6;  // 0 feeds an empty chunk
      chunks.push_back(rest.substr(0, size));
      rest.remove_prefix(chunks.back().size());
    }
    ASSERT_EQ(stuff(chunks), stuff_reference(content)) << testing::PrintToString(content);
  }
}

TEST(DotStuffer, IsReusableAfterFinish) {
  DotStuffer stuffer;
  std::string out;
  stuffer.encode("abc", out);
  stuffer.finish(out);
  stuffer.encode(".x\r\n", out);
  stuffer.finish(out);
  EXPECT_EQ(out, "abc\r\n.\r\n..x\r\n.\r\n");
}

}  // namespace
}  // namespace portrelay::smtp
