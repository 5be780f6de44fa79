// The maildrop's file format (a hostile user may write any bytes into it) and its files.
#include "portrelay/spool/maildrop.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "support/temp_dir.hpp"

namespace {

using portrelay::spool::DroppedMessage;
using portrelay::spool::encode_dropped;
using portrelay::spool::Maildrop;
using portrelay::spool::MaildropLimits;
using portrelay::spool::parse_dropped;

DroppedMessage cron_mail() {
  return {"root@vm1.example",
          {"root@vm1.example", "ops@example.com"},
          true,
          "From: root (Cron Daemon)\r\nSubject: nightly\r\n\r\nprice: 5 \xe2\x82\xac\r\n.\r\n"};
}

TEST(MaildropFormat, RoundTripsEveryField) {
  const auto file = encode_dropped(cron_mail());
  EXPECT_EQ(file.substr(0, file.find("\n\n") + 2),
            "portrelay-maildrop 1\nsender <root@vm1.example>\nrecipient <root@vm1.example>\n"
            "recipient <ops@example.com>\nbody 8bit\n\n");
  auto parsed = parse_dropped(file, {});
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->sender, "root@vm1.example");
  EXPECT_EQ(parsed->recipients, cron_mail().recipients);
  EXPECT_TRUE(parsed->eight_bit);
  EXPECT_EQ(parsed->content, cron_mail().content);
}

TEST(MaildropFormat, NullSenderAndEmptyContent) {
  auto parsed = parse_dropped(encode_dropped({"", {"a@b.example"}, false, ""}), {});
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->sender, "");
  EXPECT_FALSE(parsed->eight_bit);
  EXPECT_EQ(parsed->content, "");
}

// Each a file a local user could plant: refused with a reason, never half-taken.
TEST(MaildropFormat, RefusesWhatTheSmtpServerWouldRefuse) {
  const std::string head = "portrelay-maildrop 1\nsender <a@b.example>\nrecipient <c@d.example>\n";
  struct Case {
    std::string file;
    std::string reason;
  };
  for (const Case& c : std::vector<Case>{
           {"", "bad first line"},
           {"portrelay-maildrop 2\n", "bad first line"},
           {"portrelay-maildrop 1\nsender a@b\n", "sender"},
           {"portrelay-maildrop 1\nsender <a@b> SIZE=1\nrecipient <c@d>\nbody 7bit\n\n", "sender"},
           {"portrelay-maildrop 1\nsender <a@b\r>\nrecipient <c@d>\nbody 7bit\n\n", "sender"},
           {"portrelay-maildrop 1\nsender <a@b>\nbody 7bit\n\n", "no recipient"},
           {"portrelay-maildrop 1\nsender <a@b>\nrecipient <>\nbody 7bit\n\n", "recipient"},
           {head + "\n", "no body line"},
           {head + "body 9bit\n\n", "recipient"},
           {head + "body 7bit\nrecipient <e@f>\n\n", "after the body line"},
           {head + "body 7bit\n", "does not end"},
           {head + "body 7bit\n\nbare LF\n", "bare LF"},
           {head + "body 7bit\n\nbare CR\rhere\r\n", "bare CR"},
           {head + "body 7bit\n\nno end", "CRLF"},
           {head + "body 7bit\n\n" + std::string("nul\0\r\n", 6), "NUL"},
           {"portrelay-maildrop 1\nsender <" + std::string(2000, 'a') + ">\n", "over 1024"},
       }) {
    auto parsed = parse_dropped(c.file, {});
    ASSERT_FALSE(parsed) << c.file;
    EXPECT_NE(parsed.error().message.find(c.reason), std::string::npos)
        << parsed.error().message << " for " << c.file;
  }
}

TEST(MaildropFormat, EnforcesTheListenersLimits) {
  DroppedMessage message = cron_mail();
  MaildropLimits limits;
  limits.max_recipients = 1;
  EXPECT_FALSE(parse_dropped(encode_dropped(message), limits));
  limits.max_recipients = 2;
  limits.max_content = message.content.size() - 1;
  auto parsed = parse_dropped(encode_dropped(message), limits);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("limit"), std::string::npos);
  limits.max_content = message.content.size();
  EXPECT_TRUE(parse_dropped(encode_dropped(message), limits));
}

TEST(Maildrop, DropThenPickUpOnRealFiles) {
  portrelay::test::TempDir spool;
  Maildrop maildrop(spool.path());
  struct stat info {};
  ASSERT_EQ(::stat(maildrop.path().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 03733u);
  ASSERT_EQ(::stat(spool.path().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0711u);

  auto name = portrelay::spool::drop_message(maildrop.path(), cron_mail());
  ASSERT_TRUE(name) << name.error().message;
  ASSERT_EQ(::stat((maildrop.path() + "/" + *name).c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0640u);
  EXPECT_EQ(maildrop.waiting(10), std::vector<std::string>{*name});
  auto file = maildrop.read(*name, 1 << 20);
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->uid, ::geteuid());
  auto parsed = parse_dropped(file->data, {});
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->content, cron_mail().content);
  maildrop.remove(*name);
  EXPECT_TRUE(maildrop.waiting(10).empty());
}

TEST(Maildrop, SkipsPartialFilesAndRefusesLinksFifosAndOversizedFiles) {
  portrelay::test::TempDir spool;
  Maildrop maildrop(spool.path());
  const std::string dir = maildrop.path();
  std::ofstream(dir + "/.123.partial") << "being written";
  std::ofstream(spool.path() + "/secret") << "not for the daemon to read";
  ASSERT_EQ(::symlink((spool.path() + "/secret").c_str(), (dir + "/1-link").c_str()), 0);
  ASSERT_EQ(::mkfifo((dir + "/2-fifo").c_str(), 0644), 0);
  ASSERT_EQ(::link((spool.path() + "/secret").c_str(), (dir + "/3-hardlink").c_str()), 0);
  std::ofstream(dir + "/4-big") << std::string(2048, 'x');
  EXPECT_EQ(maildrop.waiting(10),
            (std::vector<std::string>{"1-link", "2-fifo", "3-hardlink", "4-big"}));
  EXPECT_FALSE(maildrop.read("1-link", 1 << 20));  // O_NOFOLLOW
  auto fifo = maildrop.read("2-fifo", 1 << 20);    // returns at once: O_NONBLOCK
  ASSERT_FALSE(fifo);
  EXPECT_NE(fifo.error().message.find("not a regular file"), std::string::npos);
  auto hardlink = maildrop.read("3-hardlink", 1 << 20);
  ASSERT_FALSE(hardlink);
  EXPECT_NE(hardlink.error().message.find("more than one link"), std::string::npos);
  EXPECT_FALSE(maildrop.read("4-big", 1024));
  maildrop.set_aside("4-big");
  EXPECT_EQ(::access((spool.path() + "/corrupt/maildrop-4-big").c_str(), F_OK), 0);
  std::ifstream secret(spool.path() + "/secret");
  std::string kept;
  std::getline(secret, kept);
  EXPECT_EQ(kept, "not for the daemon to read");
}

}  // namespace
