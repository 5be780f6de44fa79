#include "portrelay/config/local_domains.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "portrelay/config/config.hpp"
#include "support/temp_dir.hpp"

namespace {

using portrelay::config::default_local_domains;
using portrelay::config::LocalDomains;
using portrelay::config::parse_config;
using portrelay::config::read_mailname;

constexpr const char* kUpstream = "[[upstream]]\nhost = \"smtp.example.com\"\nport = 587\n";

TEST(LocalDomains, NoDomainIsLocalAndTheNullSenderIsNot) {
  const LocalDomains local({"vm-1234.internal"});
  EXPECT_TRUE(local.contains("root"));
  EXPECT_FALSE(local.contains(""));
}

TEST(LocalDomains, ListedDomainsMatchWithoutCase) {
  const LocalDomains local({"VM-1234.Internal", "localhost"});
  EXPECT_TRUE(local.contains("root@vm-1234.internal"));
  EXPECT_TRUE(local.contains("www-data@VM-1234.INTERNAL"));
  EXPECT_TRUE(local.contains("root@localhost"));
  EXPECT_FALSE(local.contains("root@example.com"));
  EXPECT_FALSE(local.contains("root@sub.vm-1234.internal"));
  EXPECT_EQ(local.domains(), (std::vector<std::string>{"vm-1234.internal", "localhost"}));
}

TEST(LocalDomains, TheDomainIsAfterTheLastAt) {
  const LocalDomains local({"vm"});
  EXPECT_TRUE(local.contains("\"a@example.com\"@vm"));
  EXPECT_FALSE(local.contains("\"a@vm\"@example.com"));
}

TEST(LocalDomains, DefaultsAreHostMailnameAndLocalhostOnceEach) {
  EXPECT_EQ(
      default_local_domains("VM-1", "example.org"),
      (std::vector<std::string>{"vm-1", "example.org", "localhost", "localhost.localdomain"}));
  EXPECT_EQ(default_local_domains("localhost", ""),
            (std::vector<std::string>{"localhost", "localhost.localdomain"}));
}

TEST(LocalDomains, MailnameIsTheTrimmedFirstLine) {
  portrelay::test::TempDir dir;
  const std::string path = dir.path() + "/mailname";
  std::ofstream(path) << "  mail.example.org \nsecond.example\n";
  EXPECT_EQ(read_mailname(path), "mail.example.org");
  EXPECT_EQ(read_mailname(dir.path() + "/missing"), "");
}

TEST(RewriteSection, LocalDomainsAreReadAndChecked) {
  const auto config = parse_config(
      std::string("[rewrite]\nlocal_domains = [\"VM.internal\", \"vm.internal\"]\n") + kUpstream,
      "portrelay.toml");
  EXPECT_EQ(config.rewrite.local_domains, (std::vector<std::string>{"vm.internal"}));
  try {
    parse_config(std::string("[rewrite]\nlocal_domains = [\"not a domain\"]\n") + kUpstream,
                 "portrelay.toml");
    FAIL() << "no error";
  } catch (const portrelay::config::ConfigError& error) {
    EXPECT_EQ(std::string(error.what()),
              "portrelay.toml:2:18: rewrite.local_domains: \"not a domain\" is not a domain name "
              "(\"vm-1234.internal\")");
  }
}

TEST(RewriteSection, DefaultIncludesTheServerHostname) {
  const auto config = parse_config(
      std::string("[server]\nhostname = \"relay.example.net\"\n") + kUpstream, "portrelay.toml");
  ASSERT_FALSE(config.rewrite.local_domains.empty());
  EXPECT_EQ(config.rewrite.local_domains.front(), "relay.example.net");
}

TEST(Upstreams, TablesSharingANameAreOneAccount) {
  const auto config = parse_config(
      "[[upstream]]\nname = \"ses\"\nhost = \"a.example\"\nports = [587, 2587]\n"
      "[[upstream]]\nname = \"mg\"\nhost = \"b.example\"\nport = 587\n"
      "[[upstream]]\nname = \"ses\"\nhost = \"a.example\"\nport = 465\n",
      "portrelay.toml");
  ASSERT_EQ(config.upstreams.size(), 2u);
  EXPECT_EQ(config.upstreams[0].name, "ses");
  EXPECT_EQ(config.upstreams[0].source_line, 1);
  EXPECT_EQ(config.upstreams[0].endpoints, (std::vector<std::size_t>{0, 1, 3}));
  EXPECT_EQ(config.upstreams[1].name, "mg");
  EXPECT_EQ(config.upstreams[1].endpoints, (std::vector<std::size_t>{2}));
  EXPECT_EQ(config.chain[3].upstream, 0u);
  EXPECT_EQ(config.chain[2].upstream, 1u);
}

}  // namespace

namespace {

using portrelay::config::AliasTable;

AliasTable table(AliasTable::Entries entries) {
  return AliasTable(std::move(entries), LocalDomains({"vm.internal", "localhost"}));
}

TEST(AliasTable, MapsLocalNamesAndLeavesRemoteAddressesAlone) {
  const auto aliases = table({{"Root", {"ops@example.com"}}});
  EXPECT_EQ(aliases.resolve("root"), (std::vector<std::string>{"ops@example.com"}));
  EXPECT_EQ(aliases.resolve("ROOT@vm.internal"), (std::vector<std::string>{"ops@example.com"}));
  EXPECT_EQ(aliases.resolve("someone@example.org"),
            (std::vector<std::string>{"someone@example.org"}));
  EXPECT_TRUE(aliases.resolve("www-data").empty());
}

TEST(AliasTable, DefaultCatchesUnlistedNames) {
  const auto aliases = table({{"root", {"ops@example.com"}}, {"default", {"all@example.com"}}});
  EXPECT_EQ(aliases.resolve("www-data@localhost"), (std::vector<std::string>{"all@example.com"}));
  EXPECT_EQ(aliases.resolve("root"), (std::vector<std::string>{"ops@example.com"}));
}

TEST(AliasTable, ChainsAreFollowedAndTargetsKeptOnce) {
  const auto aliases = table({{"root", {"admin", "ops@example.com"}},
                              {"admin", {"alice@example.com", "ops@example.com"}}});
  EXPECT_EQ(aliases.resolve("root"),
            (std::vector<std::string>{"alice@example.com", "ops@example.com"}));
  EXPECT_EQ(aliases.find_loop(), "");
}

TEST(AliasTable, LoopsAreFoundAndResolveToNothing) {
  const auto aliases = table({{"a", {"b@localhost"}}, {"b", {"a"}}});
  EXPECT_EQ(aliases.find_loop(), "a -> b -> a");
  EXPECT_TRUE(aliases.resolve("a").empty());
}

TEST(AliasesSection, ParsesStringsAndArraysAndRefusesLoops) {
  const auto config = parse_config(std::string("[rewrite]\nlocal_domains = [\"vm\"]\n"
                                               "[aliases]\nroot = \"ops@example.com\"\n"
                                               "postmaster = [\"root\", \"pm@example.com\"]\n") +
                                       kUpstream,
                                   "portrelay.toml");
  EXPECT_EQ(config.aliases.resolve("postmaster@vm"),
            (std::vector<std::string>{"ops@example.com", "pm@example.com"}));
  try {
    parse_config(std::string("[aliases]\nroot = \"admin\"\nadmin = \"root\"\n") + kUpstream,
                 "portrelay.toml");
    FAIL() << "no error";
  } catch (const portrelay::config::ConfigError& error) {
    EXPECT_EQ(std::string(error.what()),
              "portrelay.toml:1:1: aliases: admin -> root -> admin is a loop");
  }
  try {
    parse_config(std::string("[aliases]\nroot = \"a b@example.com\"\n") + kUpstream,
                 "portrelay.toml");
    FAIL() << "no error";
  } catch (const portrelay::config::ConfigError& error) {
    EXPECT_EQ(std::string(error.what()),
              "portrelay.toml:2:8: aliases.root: \"a b@example.com\" is not an address");
  }
}

}  // namespace
