// sendmail(8) command lines as real callers write them.
#include "portrelay/cli/sendmail_options.hpp"

#include <gtest/gtest.h>

namespace {

using portrelay::cli::parse_sendmail_arguments;
using portrelay::cli::SendmailOptions;

SendmailOptions parse(std::vector<std::string> arguments) {
  auto parsed = parse_sendmail_arguments(arguments);
  EXPECT_TRUE(parsed.options) << parsed.error;
  return parsed.options.value_or(SendmailOptions{});
}

TEST(SendmailOptions, CronMailtoCommandLine) {
  auto options = parse({"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"});
  EXPECT_EQ(options.full_name, "CronDaemon");
  EXPECT_FALSE(options.lone_dot_ends);
  EXPECT_EQ(options.body_type, "8BITMIME");
  EXPECT_EQ(options.recipients, std::vector<std::string>{"root"});
  EXPECT_EQ(options.mode, SendmailOptions::Mode::kDeliver);
}

TEST(SendmailOptions, PhpDefaultAndGroupedFlags) {
  auto separate = parse({"-t", "-i"});
  EXPECT_TRUE(separate.recipients_from_headers);
  EXPECT_FALSE(separate.lone_dot_ends);
  auto grouped = parse({"-ti"});
  EXPECT_TRUE(grouped.recipients_from_headers);
  EXPECT_FALSE(grouped.lone_dot_ends);
}

TEST(SendmailOptions, SenderAttachedOrSeparateAndNullSender) {
  EXPECT_EQ(parse({"-fapp@example.test", "x@y"}).sender, "app@example.test");
  EXPECT_EQ(parse({"-f", "app@example.test", "x@y"}).sender, "app@example.test");
  EXPECT_EQ(parse({"-r", "app@example.test", "x@y"}).sender, "app@example.test");
  auto null_sender = parse({"-f", "<>", "x@y"});
  EXPECT_TRUE(null_sender.sender_given);
  EXPECT_EQ(null_sender.sender, "");
  EXPECT_FALSE(parse({"x@y"}).sender_given);
}

TEST(SendmailOptions, OldStyleOptionsAreAcceptedAndOnlyIMatters) {
  auto options = parse({"-oi", "-oem", "-odi", "-odb", "-oQ/var/spool", "x@y"});
  EXPECT_FALSE(options.lone_dot_ends);
  EXPECT_EQ(options.ignored.size(), 4u);
  EXPECT_TRUE(parse({"-oi=false", "x@y"}).lone_dot_ends);
  EXPECT_FALSE(parse({"-O", "IgnoreDots=true", "x@y"}).lone_dot_ends);
}

TEST(SendmailOptions, UnknownLettersNeverLoseTheMessage) {
  auto options = parse({"-Z", "-U", "-m", "-N", "never", "-R", "hdrs", "-V", "id", "x@y"});
  EXPECT_EQ(options.recipients, std::vector<std::string>{"x@y"});
  EXPECT_EQ(options.mode, SendmailOptions::Mode::kDeliver);
}

TEST(SendmailOptions, Modes) {
  EXPECT_EQ(parse({"-bp"}).mode, SendmailOptions::Mode::kListQueue);
  EXPECT_EQ(parse({"-bm", "x@y"}).mode, SendmailOptions::Mode::kDeliver);
  EXPECT_EQ(parse({"-bi"}).mode, SendmailOptions::Mode::kNoop);
  EXPECT_EQ(parse({"-q"}).mode, SendmailOptions::Mode::kNoop);
  EXPECT_EQ(parse({"-q30m"}).mode, SendmailOptions::Mode::kNoop);
  auto daemon = parse({"-bd"});
  EXPECT_EQ(daemon.mode, SendmailOptions::Mode::kUnsupported);
  EXPECT_EQ(daemon.mode_flag, "-bd");
}

TEST(SendmailOptions, ConfigLongOptionBeatsC) {
  EXPECT_EQ(parse({"-C", "/a.toml", "x@y"}).config_path, "/a.toml");
  EXPECT_EQ(parse({"-C/a.toml", "--config", "/b.toml", "x@y"}).config_path, "/b.toml");
  EXPECT_EQ(parse({"--config=/b.toml", "-C", "/a.toml"}).config_path, "/b.toml");
  EXPECT_EQ(parse({"x@y"}).config_path, "");
}

TEST(SendmailOptions, RecipientsAfterOptionsAndDoubleDash) {
  auto options = parse({"-i", "--", "-odd@example.test", "Ann <ann@example.test>, b@example.test"});
  EXPECT_EQ(options.recipients,
            (std::vector<std::string>{"-odd@example.test", "ann@example.test", "b@example.test"}));
}

TEST(SendmailOptions, MissingValueIsAUsageError) {
  auto parsed = parse_sendmail_arguments({"-i", "-f"});
  EXPECT_FALSE(parsed.options);
  EXPECT_NE(parsed.error.find("-f"), std::string::npos);
}

}  // namespace

// sendmail -f is the fifth parameter of PHP's mail(): an address holding CR/LF would end MAIL
// FROM and start commands of the caller's choosing. Refused whole, never cleaned.
TEST(SendmailOptions, LineBreaksAndNulInEnvelopeArgumentsAreUsageErrors) {
  const std::string smuggled = "a@x>\r\nRCPT TO:<evil@x>\r\nDATA\r\n.\r\nMAIL FROM:<b@x";
  for (const auto& arguments : std::vector<std::vector<std::string>>{
           {"-f", smuggled, "ok@example.test"},
           {"-f" + smuggled, "ok@example.test"},
           {"-r", "a@x\nb", "ok@example.test"},
           {"-F", "Name\r\nBcc: evil@x", "ok@example.test"},
           {"-i", "ok@example.test", "evil@x\r\nDATA"},
           {"--", std::string("nul\0@x", 6)},
       }) {
    auto parsed = portrelay::cli::parse_sendmail_arguments(arguments);
    EXPECT_FALSE(parsed.options.has_value()) << arguments[1];
    EXPECT_NE(parsed.error.find("CR, LF or NUL"), std::string::npos) << parsed.error;
  }
  EXPECT_TRUE(portrelay::cli::parse_sendmail_arguments({"-f", "a@x", "b@y"}).options);
}
