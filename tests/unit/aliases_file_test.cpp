// aliases_file: Debian's /etc/aliases format, and how it merges with inline [aliases].
#include "portrelay/config/aliases_file.hpp"

#include <gtest/gtest.h>

#include <string>

#include "portrelay/config/config.hpp"
#include "portrelay/server/users_file.hpp"
#include "portrelay/spool/spool_record.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace portrelay;
using config::parse_aliases_file;

constexpr const char* kUpstream = "[[upstream]]\nhost = \"smtp.example.com\"\nport = 587\n";

TEST(AliasesFile, DebianFormatWithCommentsAndContinuations) {
  const auto file = parse_aliases_file(
      "# /etc/aliases\n"
      "mailer-daemon: postmaster\n"
      "postmaster: root\n"
      "\n"
      "root: ops@example.com,\n"
      "  admin@example.com\n"
      "# a comment does not end the entry\n"
      "\tthird@example.com\r\n"
      "Web-Data : \"web@example.com\"\n",
      "/etc/aliases");
  EXPECT_TRUE(file.warnings.empty()) << file.warnings.front();
  ASSERT_EQ(file.entries.size(), 4u);
  EXPECT_EQ(
      file.entries.at("root"),
      (std::vector<std::string>{"ops@example.com", "admin@example.com", "third@example.com"}));
  EXPECT_EQ(file.entries.at("postmaster"), (std::vector<std::string>{"root"}));
  EXPECT_EQ(file.entries.at("Web-Data"), (std::vector<std::string>{"web@example.com"}));
}

TEST(AliasesFile, CommandsFilesAndIncludesAreRefusedWithFileAndLine) {
  const auto file = parse_aliases_file(
      "root: ops@example.com\n"
      "majordomo: \"|/usr/lib/majordomo/wrapper majordomo\"\n"
      "archive: /var/mail/archive, keeper@example.com\n"
      "list: :include:/etc/mail/list\n"
      "root: second@example.com\n"
      "garbage line\n"
      "bad: <a@b.c>\n",
      "/etc/aliases");
  std::string all;
  for (const auto& warning : file.warnings) all += warning + "\n";
  ASSERT_EQ(file.warnings.size(), 9u) << all;
  EXPECT_EQ(file.warnings[0].rfind("/etc/aliases:2: majordomo: a command", 0), 0u)
      << file.warnings[0];
  EXPECT_EQ(file.warnings[1].rfind("/etc/aliases:2: majordomo has no address", 0), 0u);
  EXPECT_EQ(file.warnings[2].rfind("/etc/aliases:3: archive: a file (/var/mail/archive)", 0), 0u);
  EXPECT_EQ(file.warnings[3].rfind("/etc/aliases:4: list: an include", 0), 0u);
  EXPECT_EQ(file.warnings[4].rfind("/etc/aliases:4: list has no address", 0), 0u);
  EXPECT_EQ(file.warnings[5].rfind("/etc/aliases:5: root is listed again", 0), 0u);
  EXPECT_EQ(file.warnings[6].rfind("/etc/aliases:6: not \"name: address", 0), 0u);
  EXPECT_EQ(file.warnings[7].rfind("/etc/aliases:7: bad: \"<a@b.c>\" is not an address", 0), 0u);
  EXPECT_EQ(file.entries.at("root"), (std::vector<std::string>{"ops@example.com"}));
  EXPECT_EQ(file.entries.at("archive"), (std::vector<std::string>{"keeper@example.com"}));
  EXPECT_EQ(file.entries.count("majordomo"), 0u);
  EXPECT_EQ(file.entries.count("bad"), 0u);
}

TEST(AliasesFile, MergedWithInlineKeysWhichWin) {
  test::TempDir dir;
  const std::string path = dir.write_file(
      "aliases", "postmaster: root\nroot: file-root@example.com\nabuse: |/bin/true\n");
  const auto config =
      config::parse_config("[rewrite]\nlocal_domains = [\"vm\"]\n[aliases]\naliases_file = \"" +
                               path + "\"\nroot = \"inline-root@example.com\"\n" + kUpstream,
                           "test.toml");
  EXPECT_EQ(config.aliases_file, path);
  EXPECT_EQ(config.aliases.resolve("postmaster@vm"),
            (std::vector<std::string>{"inline-root@example.com"}));
  ASSERT_EQ(config.warnings.size(), 2u);
  EXPECT_EQ(config.warnings[0].rfind(path + ":3: abuse: a command", 0), 0u) << config.warnings[0];
}

TEST(AliasesFile, LoopsThroughTheFileAreErrors) {
  test::TempDir dir;
  const std::string path = dir.write_file("aliases", "a: b\nb: a\n");
  try {
    config::parse_config("[aliases]\naliases_file = \"" + path + "\"\n" + kUpstream, "test.toml");
    ADD_FAILURE() << "no error";
  } catch (const config::ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("is a loop (with aliases_file " + path + ")"),
              std::string::npos)
        << error.what();
  }
}

TEST(AliasesFile, MissingFileIsAnError) {
  try {
    config::parse_config(
        "[aliases]\naliases_file = \"/nonexistent/aliases\"\n" + std::string(kUpstream),
        "test.toml");
    ADD_FAILURE() << "no error";
  } catch (const config::ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("cannot read \"/nonexistent/aliases\""),
              std::string::npos)
        << error.what();
  }
}

TEST(SpoolRecordRoute, RouteRoundTripsAndOldFilesTakeTheDefault) {
  spool::Envelope envelope;
  envelope.id = "0123456789abcdef";
  envelope.arrival_ms = 1;
  envelope.sender = "a@shop.example.com";
  envelope.recipients = {"b@example.com"};
  const std::string without = spool::encode_header(envelope, 0);
  EXPECT_EQ(without.find("route "), std::string::npos) << "the default route writes no line";
  auto parsed = spool::parse_header(without + "\n.end\n");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->envelope.route, "");
  envelope.route = "shop";
  const std::string with = spool::encode_header(envelope, 0);
  parsed = spool::parse_header(with + "\n.end\n");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->envelope.route, "shop");
}

TEST(UsersFileSenders, AThirdFieldListsTheUsersSenders) {
  test::TempDir dir;
  const std::string hash =
      "$scrypt$ln=4,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=";
  const std::string path = dir.write_file(
      "users", "old:" + hash + "\nshop:" + hash + ":*@shop.example.com, billing@example.com\n");
  const auto users = server::parse_users_file(path);
  EXPECT_TRUE(users.at("old").allowed_senders.empty());
  EXPECT_EQ(users.at("old").hash, hash);
  EXPECT_EQ(users.at("shop").hash, hash);
  EXPECT_EQ(users.at("shop").allowed_senders,
            (std::vector<std::string>{"*@shop.example.com", "billing@example.com"}));
  const std::string bad = dir.write_file("bad", "shop:" + hash + ":\n");
  EXPECT_THROW(server::parse_users_file(bad), std::runtime_error);
}

}  // namespace
