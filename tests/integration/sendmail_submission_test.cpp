// `portrelay sendmail`'s SMTP client against a daemon that hangs up on the courtesy
// commands: RSET and QUIT after a refused recipient change nothing about the message, so a
// connection the server drops then must not turn the recipient's verdict into "unreachable"
// (EX_TEMPFAIL, or a copy in the maildrop for a recipient the server refused).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <string>

#include "portrelay/submit/smtp_submission.hpp"
#include "support/fake_upstream.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::test {
namespace {

using Outcome = submit::SubmissionResult::Outcome;

submit::SubmissionRequest request_to(const FakeUpstream& daemon) {
  submit::SubmissionRequest request;
  request.host = daemon.host();
  request.port = daemon.port();
  request.helo_name = "vm1.example.test";
  request.sender = "cron@vm1.example.test";
  request.recipients = {"nobody@example.test"};
  request.content = "Subject: nightly\r\n\r\ndone\r\n";
  request.connect_timeout = std::chrono::seconds(5);
  request.reply_timeout = std::chrono::seconds(5);
  request.final_reply_timeout = std::chrono::seconds(5);
  return request;
}

TEST(SendmailSubmission, RecipientRefusedThenQuitDroppedIsStillNoRecipients) {
  FakeUpstream::Config config;
  config.overrides[SmtpStage::kRcpt] = StageAction::reply_with("550 5.1.1 No such user");
  config.overrides[SmtpStage::kQuit] = StageAction::close_connection();
  FakeUpstream daemon(config);
  const auto result = submit::submit_message(request_to(daemon), nullptr);
  EXPECT_EQ(result.outcome, Outcome::kNoRecipients) << result.detail;
  ASSERT_EQ(result.refused_recipients.size(), 1u);
  EXPECT_NE(result.refused_recipients[0].find("550 5.1.1"), std::string::npos);
  EXPECT_TRUE(daemon.transactions().empty());
}

TEST(SendmailSubmission, RecipientDeferredThenRsetDroppedIsStillTransient) {
  FakeUpstream::Config config;
  config.overrides[SmtpStage::kRcpt] = StageAction::reply_with("451 4.3.0 Try later");
  config.overrides[SmtpStage::kRset] = StageAction::close_connection();
  FakeUpstream daemon(config);
  const auto result = submit::submit_message(request_to(daemon), nullptr);
  EXPECT_EQ(result.outcome, Outcome::kTransient) << result.detail;
  EXPECT_NE(result.detail.find("451 4.3.0"), std::string::npos) << result.detail;
  EXPECT_TRUE(daemon.transactions().empty());
}

// The binary as cron runs it: a refused recipient is exit 67 (EX_NOUSER), whatever the
// daemon does with the QUIT that follows.
TEST(SendmailSubmission, SendmailExitsNoUserWhenTheDaemonDropsQuit) {
  FakeUpstream::Config config;
  config.overrides[SmtpStage::kRcpt] = StageAction::reply_with("550 5.1.1 No such user");
  config.overrides[SmtpStage::kQuit] = StageAction::close_connection();
  FakeUpstream daemon(config);
  TempDir dir;
  const std::string config_file = dir.write_file(
      "portrelay.toml", "[server]\nlisten = [\"127.0.0.1:" + std::to_string(daemon.port()) +
                            "\"]\nhostname = \"vm1.example.test\"\n"
                            "[[upstream]]\nhost = \"127.0.0.1\"\nport = 1\ntls = \"none\"\n"
                            "[metrics]\nenabled = false\n");
  const std::string message = dir.write_file("message.txt", "Subject: nightly\n\ndone\n");
  const std::string command = std::string(PORTRELAY_BINARY) + " sendmail -C " + config_file +
                              " nobody@example.test <" + message + " 2>" + dir.file("stderr");
  const int status = std::system(command.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 67);  // EX_NOUSER, not 75 (EX_TEMPFAIL)
  EXPECT_TRUE(daemon.transactions().empty());
}

}  // namespace
}  // namespace portrelay::test
