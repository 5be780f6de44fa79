// Log lines as an operator's tools read them: logfmt quoting, JSON escaping (control
// characters, quotes, UTF-8 kept, invalid bytes replaced so the line stays valid JSON), the
// journald "<priority>" prefix, and the check that stderr really is journald's stream.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <thread>

#include "portrelay/base/log.hpp"

namespace portrelay::log {
namespace {

constexpr const char* kTime = "2026-11-23T06:50:01.123Z";

TEST(LogFormat, LogfmtLineIsKeyValuePairsOnly) {
  EXPECT_EQ(format_line(Format::Logfmt, false, Level::Warn, kTime, "upstream_failed",
                        {{"endpoint", "smtp.x:587"}, {"detail", "connection refused"}}),
            "ts=2026-11-23T06:50:01.123Z level=warn event=upstream_failed endpoint=smtp.x:587 "
            "detail=\"connection refused\"\n");
  EXPECT_EQ(format_line(Format::Logfmt, false, Level::Info, kTime, "stopped", {}),
            "ts=2026-11-23T06:50:01.123Z level=info event=stopped\n");
}

TEST(LogFormat, LogfmtQuotesOnlyWhenNeeded) {
  EXPECT_EQ(quote("plain@example.test"), "plain@example.test");
  EXPECT_EQ(quote(""), "\"\"");
  EXPECT_EQ(quote("a b"), "\"a b\"");
  EXPECT_EQ(quote("k=v"), "\"k=v\"");
  EXPECT_EQ(quote("say \"hi\""), "\"say \\\"hi\\\"\"");
  EXPECT_EQ(quote("back\\slash and space"), "\"back\\\\slash and space\"");
  EXPECT_EQ(quote("line\r\nbreak"), "\"line\\x0d\\x0abreak\"");
  EXPECT_EQ(quote("del\x7f"), "\"del\\x7f\"");
  EXPECT_EQ(quote("tab\there"), "\"tab\\x09here\"");
  EXPECT_EQ(quote("caf\xc3\xa9"), "caf\xc3\xa9");  // UTF-8 passes through
}

TEST(LogFormat, JsonEscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(json_string("plain"), "\"plain\"");
  EXPECT_EQ(json_string(""), "\"\"");
  EXPECT_EQ(json_string("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
  EXPECT_EQ(json_string("a\nb\rc\td\be\ff"), "\"a\\nb\\rc\\td\\be\\ff\"");
  EXPECT_EQ(json_string(std::string("nul\0x", 5)), "\"nul\\u0000x\"");
  EXPECT_EQ(json_string("\x01\x1f\x7f"), "\"\\u0001\\u001f\\u007f\"");
  EXPECT_EQ(json_string("</script>"), "\"</script>\"");
}

TEST(LogFormat, JsonKeepsValidUtf8) {
  EXPECT_EQ(json_string("caf\xc3\xa9"), "\"caf\xc3\xa9\"");            // U+00E9
  EXPECT_EQ(json_string("\xe2\x82\xac 5"), "\"\xe2\x82\xac 5\"");      // U+20AC
  EXPECT_EQ(json_string("\xf0\x9f\x98\x80"), "\"\xf0\x9f\x98\x80\"");  // U+1F600
  EXPECT_EQ(json_string("\xed\x9f\xbf"), "\"\xed\x9f\xbf\"");          // U+D7FF
  EXPECT_EQ(json_string("\xf4\x8f\xbf\xbf"), "\"\xf4\x8f\xbf\xbf\"");  // U+10FFFF
  EXPECT_EQ(json_string("\xe2\x80\xa8"), "\"\xe2\x80\xa8\"");          // U+2028 is valid JSON
}

TEST(LogFormat, JsonReplacesEachInvalidUtf8Byte) {
  const std::string r = "\\ufffd";
  EXPECT_EQ(json_string("\x80"), "\"" + r + "\"");                          // lone continuation
  EXPECT_EQ(json_string("ab\xc3"), "\"ab" + r + "\"");                      // truncated at the end
  EXPECT_EQ(json_string("\xe2\x82z"), "\"" + r + r + "z\"");                // truncated inside
  EXPECT_EQ(json_string("\xc0\xaf"), "\"" + r + r + "\"");                  // overlong '/'
  EXPECT_EQ(json_string("\xe0\x80\xaf"), "\"" + r + r + r + "\"");          // overlong, 3 bytes
  EXPECT_EQ(json_string("\xed\xa0\x80"), "\"" + r + r + r + "\"");          // UTF-16 surrogate
  EXPECT_EQ(json_string("\xf4\x90\x80\x80"), "\"" + r + r + r + r + "\"");  // above U+10FFFF
  EXPECT_EQ(json_string("\xff\xfe"), "\"" + r + r + "\"");
  EXPECT_EQ(json_string("\xc3\xa9\xa9"), "\"\xc3\xa9" + r + "\"");  // one valid, one stray
}

TEST(LogFormat, JsonLineParsesBackToTheSameFields) {
  const std::string hostile = std::string("a\"b\\c\nd\x01 \xc3\xa9 \xff end", 17);
  const std::string line = format_line(Format::Json, false, Level::Error, kTime, "message",
                                       {{"from", hostile}, {"to", "a@x,b@y"}, {"ms", "12"}});
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line";
  const auto json = nlohmann::json::parse(line);  // throws on invalid JSON or UTF-8
  EXPECT_EQ(json.at("ts"), kTime);
  EXPECT_EQ(json.at("level"), "error");
  EXPECT_EQ(json.at("event"), "message");
  EXPECT_EQ(json.at("to"), "a@x,b@y");
  EXPECT_EQ(json.at("ms"), "12");  // values are always strings
  EXPECT_EQ(json.at("from"), "a\"b\\c\nd\x01 \xc3\xa9 \xef\xbf\xbd end");
  EXPECT_EQ(json.size(), 6u);
  EXPECT_EQ(line.rfind("{\"ts\":", 0), 0u) << line;
}

TEST(LogFormat, JournalPrefixIsTheSyslogPriority) {
  EXPECT_EQ(format_line(Format::Logfmt, true, Level::Debug, kTime, "e", {}).substr(0, 4), "<7>t");
  EXPECT_EQ(format_line(Format::Logfmt, true, Level::Info, kTime, "e", {}).substr(0, 4), "<6>t");
  EXPECT_EQ(format_line(Format::Logfmt, true, Level::Warn, kTime, "e", {}).substr(0, 4), "<4>t");
  EXPECT_EQ(format_line(Format::Logfmt, true, Level::Error, kTime, "e", {}).substr(0, 4), "<3>t");
  const std::string json = format_line(Format::Json, true, Level::Warn, kTime, "e", {});
  EXPECT_EQ(json.substr(0, 4), "<4>{");
  EXPECT_TRUE(nlohmann::json::accept(json.substr(3))) << json;
}

TEST(LogFormat, LevelAndFormatNamesRoundTrip) {
  for (Level level : {Level::Debug, Level::Info, Level::Warn, Level::Error})
    EXPECT_EQ(parse_level(to_string(level)), level);
  EXPECT_EQ(parse_format("logfmt"), Format::Logfmt);
  EXPECT_EQ(parse_format("json"), Format::Json);
  EXPECT_EQ(parse_level("warning"), std::nullopt);
  EXPECT_EQ(parse_level("INFO"), std::nullopt);
  EXPECT_EQ(parse_format("text"), std::nullopt);
}

// Sets $JOURNAL_STREAM for one test and restores what was there.
class JournalStream : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* value = std::getenv("JOURNAL_STREAM")) saved_ = value;
    ASSERT_EQ(::pipe(pipe_), 0);
    file_ = ::open("/tmp", O_TMPFILE | O_RDWR, 0600);
    ASSERT_GE(file_, 0);
  }
  void TearDown() override {
    if (saved_) {
      ::setenv("JOURNAL_STREAM", saved_->c_str(), 1);
    } else {
      ::unsetenv("JOURNAL_STREAM");
    }
    ::close(pipe_[0]);
    ::close(pipe_[1]);
    ::close(file_);
  }
  static std::string identity(int fd) {
    struct stat status {};
    EXPECT_EQ(::fstat(fd, &status), 0);
    return std::to_string(status.st_dev) + ":" + std::to_string(status.st_ino);
  }

  std::optional<std::string> saved_;
  int pipe_[2] = {-1, -1};
  int file_ = -1;
};

TEST_F(JournalStream, MatchesOnlyTheDescriptorItNames) {
  ::setenv("JOURNAL_STREAM", identity(pipe_[1]).c_str(), 1);
  EXPECT_TRUE(is_journal_stream(pipe_[1]));
  EXPECT_FALSE(is_journal_stream(file_)) << "a redirected stderr inherits the variable";
  ::setenv("JOURNAL_STREAM", identity(file_).c_str(), 1);
  EXPECT_TRUE(is_journal_stream(file_));
  EXPECT_FALSE(is_journal_stream(pipe_[1]));
  EXPECT_FALSE(is_journal_stream(-1));
}

TEST_F(JournalStream, AbsentOrMalformedVariableIsNotJournal) {
  const std::string good = identity(file_);
  ::unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(is_journal_stream(file_));
  const std::string device = good.substr(0, good.find(':'));
  const std::string inode = good.substr(good.find(':') + 1);
  for (const std::string& bad :
       {std::string(""), device, device + ":", ":" + inode, good + ":1", " " + good, good + " ",
        device + ":x" + inode, "-" + good, inode + ":" + device}) {
    ::setenv("JOURNAL_STREAM", bad.c_str(), 1);
    EXPECT_FALSE(is_journal_stream(file_)) << "JOURNAL_STREAM=" << bad;
  }
}

// The sink itself: settings in, the right bytes on stderr.
class LogSink : public ::testing::Test {
 protected:
  void TearDown() override {
    set_format(Format::Logfmt);
    set_journal_prefix(false);
    set_min_level(Level::Info);
    set_enabled(std::getenv("PORTRELAY_TEST_LOG") != nullptr);
  }
};

TEST_F(LogSink, WritesTheConfiguredFormatAndDropsLinesBelowTheLevel) {
  set_enabled(true);
  set_min_level(Level::Warn);
  set_format(Format::Json);
  set_journal_prefix(true);
  ::testing::internal::CaptureStderr();
  info("dropped", {{"k", "v"}});
  warn("kept", {{"detail", "a \"quoted\" value"}});
  set_format(Format::Logfmt);
  set_journal_prefix(false);
  set_min_level(Level::Debug);
  debug("also_kept", {{"k", "v w"}});
  const std::string out = ::testing::internal::GetCapturedStderr();
  const auto newline = out.find('\n');
  ASSERT_NE(newline, std::string::npos) << out;
  const std::string first = out.substr(0, newline);
  ASSERT_EQ(first.substr(0, 3), "<4>") << out;
  const auto json = nlohmann::json::parse(first.substr(3));
  EXPECT_EQ(json.at("event"), "kept");
  EXPECT_EQ(json.at("level"), "warn");
  EXPECT_EQ(json.at("detail"), "a \"quoted\" value");
  const std::string second = out.substr(newline + 1);
  EXPECT_EQ(second.rfind("ts=", 0), 0u) << out;
  EXPECT_NE(second.find(" level=debug event=also_kept k=\"v w\"\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("dropped"), std::string::npos) << out;
}

// The timestamp is formatted by hand (not snprintf): RFC 3339 UTC with milliseconds, and the
// same instant gmtime_r and strftime give, across a second boundary too.
TEST_F(LogSink, TimestampIsRfc3339UtcWithMillisecondsOfNow) {
  set_enabled(true);
  set_format(Format::Logfmt);
  set_journal_prefix(false);
  set_min_level(Level::Info);
  for (int i = 0; i < 3; ++i) {
    const std::time_t before = std::time(nullptr);
    ::testing::internal::CaptureStderr();
    info("tick", {});
    const std::string out = ::testing::internal::GetCapturedStderr();
    const std::time_t after = std::time(nullptr);
    std::smatch match;
    ASSERT_TRUE(std::regex_search(
        out, match, std::regex(R"(^ts=(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\.\d{3}Z level=info)")))
        << out;
    char expected_before[32], expected_after[32];
    std::tm utc{};
    std::strftime(expected_before, sizeof expected_before, "%Y-%m-%dT%H:%M:%S",
                  gmtime_r(&before, &utc));
    std::strftime(expected_after, sizeof expected_after, "%Y-%m-%dT%H:%M:%S",
                  gmtime_r(&after, &utc));
    EXPECT_TRUE(match[1] == expected_before || match[1] == expected_after)
        << out << " vs " << expected_before;
    if (i < 2) std::this_thread::sleep_for(std::chrono::milliseconds(600));  // a new second
  }
}

}  // namespace
}  // namespace portrelay::log
