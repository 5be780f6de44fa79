// [[route]], sender patterns, allowed_senders and the envelope policy (pure parts).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "portrelay/config/config.hpp"
#include "portrelay/config/route.hpp"
#include "portrelay/config/sender_pattern.hpp"
#include "portrelay/relay/envelope_policy.hpp"

namespace {

using namespace portrelay;
using config::parse_config;
using config::sender_matches;

constexpr const char* kTwoUpstreams =
    "[[upstream]]\nname = \"sendgrid\"\nhost = \"smtp.sendgrid.example\"\nports = [587, 465]\n"
    "[[upstream]]\nname = \"mailgun\"\nhost = \"smtp.mailgun.example\"\nport = 587\n";

TEST(SenderPattern, StarMatchesAnyRunWithoutCase) {
  EXPECT_TRUE(sender_matches("*@shop.example.com", "orders@shop.example.com"));
  EXPECT_TRUE(sender_matches("*@shop.example.com", "Orders@SHOP.Example.com"));
  EXPECT_FALSE(sender_matches("*@shop.example.com", "orders@example.com"));
  EXPECT_FALSE(sender_matches("*@shop.example.com", "orders@shop.example.com.evil"));
  EXPECT_TRUE(sender_matches("billing@example.com", "billing@example.com"));
  EXPECT_FALSE(sender_matches("billing@example.com", "xbilling@example.com"));
  EXPECT_TRUE(sender_matches("*@*.example.com", "a@b.example.com"));
  EXPECT_FALSE(sender_matches("*@*.example.com", "a@example.com"));
  EXPECT_TRUE(sender_matches("*", "anyone@anywhere"));
  EXPECT_TRUE(sender_matches("a*b*c", "abxxbxc"));
}

TEST(SenderPattern, TheNullSenderMatchesNothing) {
  EXPECT_FALSE(sender_matches("*", ""));
  EXPECT_FALSE(sender_matches("", ""));
}

TEST(SenderPattern, ManyStarsStayFast) {
  // One backtracking point: a pathological pattern costs a quadratic walk at worst.
  const std::string address(200, 'a');
  EXPECT_FALSE(sender_matches("*a*a*a*a*a*a*a*a*a*a*a*b", address));
}

TEST(Routes, ParsedInOrderWithTheirChains) {
  const auto config =
      parse_config(std::string(kTwoUpstreams) +
                       "[[route]]\nname = \"shop\"\nsenders = [\"*@shop.example.com\"]\n"
                       "upstreams = [\"mailgun\", \"sendgrid\"]\n"
                       "[[route]]\nsenders = [\"billing@example.com\"]\n"
                       "upstreams = [\"sendgrid\"]\n",
                   "test.toml");
  ASSERT_EQ(config.routes.size(), 2u);
  EXPECT_EQ(config.routes[0].name, "shop");
  // mailgun's one endpoint (index 2), then sendgrid's two in their order.
  EXPECT_EQ(config.routes[0].endpoints, (std::vector<std::size_t>{2, 0, 1}));
  EXPECT_EQ(config.routes[1].name, "billing_example.com");  // derived from its first pattern
  EXPECT_EQ(config.routes[1].endpoints, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(config::choose_route(config.routes, "x@shop.example.com")->name, "shop");
  EXPECT_EQ(config::choose_route(config.routes, "billing@example.com")->name,
            "billing_example.com");
  EXPECT_EQ(config::choose_route(config.routes, "other@example.com"), nullptr);
  EXPECT_EQ(config::choose_route(config.routes, ""), nullptr);
  const std::string described = config::describe_routes(config);
  EXPECT_NE(described.find("shop  senders=*@shop.example.com"), std::string::npos) << described;
  EXPECT_NE(described.find("chain: mailgun:587 -> sendgrid:587 -> sendgrid:465"), std::string::npos)
      << described;
}

TEST(Routes, FirstMatchWins) {
  const auto config =
      parse_config(std::string(kTwoUpstreams) +
                       "[[route]]\nname = \"a\"\nsenders = [\"*@example.com\"]\n"
                       "upstreams = [\"mailgun\"]\n"
                       "[[route]]\nname = \"b\"\nsenders = [\"billing@example.com\"]\n"
                       "upstreams = [\"sendgrid\"]\n",
                   "test.toml");
  EXPECT_EQ(config::choose_route(config.routes, "billing@example.com")->name, "a");
}

TEST(Routes, DerivedNamesAreLabelSafeBoundedAndUnique) {
  EXPECT_EQ(config::derived_route_name("*@Shop.Example.com", 1), "shop.example.com");
  EXPECT_EQ(config::derived_route_name("*", 3), "route-3");
  EXPECT_EQ(config::derived_route_name("a+b@x.y", 1), "a_b_x.y");
  EXPECT_LE(config::derived_route_name(std::string(200, 'x') + "@y", 1).size(), 48u);
  const auto config =
      parse_config(std::string(kTwoUpstreams) +
                       "[[route]]\nsenders = [\"*@example.com\"]\n"
                       "upstreams = [\"mailgun\"]\n"
                       "[[route]]\nsenders = [\"*@example.com\"]\n"
                       "upstreams = [\"sendgrid\"]\n"
                       "[[route]]\nname = \"example.com-2\"\nsenders = [\"x@y.z\"]\n"
                       "upstreams = [\"sendgrid\"]\n",
                   "test.toml");
  EXPECT_EQ(config.routes[0].name, "example.com");
  EXPECT_EQ(config.routes[1].name, "example.com-3");  // -2 is written further down
  EXPECT_EQ(config.routes[2].name, "example.com-2");
}

void expect_error(const std::string& routes, const std::string& part) {
  try {
    parse_config(std::string(kTwoUpstreams) + routes, "test.toml");
    ADD_FAILURE() << "no error for: " << routes;
  } catch (const config::ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find(part), std::string::npos) << error.what();
  }
}

TEST(Routes, MistakesAreErrorsWithPositions) {
  expect_error("[[route]]\nsenders = [\"*@a.b\"]\nupstreams = [\"postmark\"]\n",
               "test.toml:11:14: route.upstreams: \"postmark\" is not the name of an [[upstream]]");
  expect_error("[[route]]\nsenders = [\"*@a.b\"]\nupstreams = [\"mailgun\", \"mailgun\"]\n",
               "\"mailgun\" is listed twice");
  expect_error("[[route]]\nupstreams = [\"mailgun\"]\n", "route.senders: missing");
  expect_error("[[route]]\nsenders = []\nupstreams = [\"mailgun\"]\n", "lists no sender pattern");
  expect_error("[[route]]\nsenders = [\"<a@b.c>\"]\nupstreams = [\"mailgun\"]\n", "angle bracket");
  expect_error("[[route]]\nsenders = [\"*@a.b\"]\n", "route.upstreams: missing");
  expect_error("[[route]]\nname = \"default\"\nsenders = [\"*@a.b\"]\nupstreams = [\"mailgun\"]\n",
               "\"default\" is the name of the route");
  expect_error("[[route]]\nname = \"a b\"\nsenders = [\"*@a.b\"]\nupstreams = [\"mailgun\"]\n",
               "not usable as a metrics label");
  expect_error(
      "[[route]]\nname = \"x\"\nsenders = [\"*@a.b\"]\nupstreams = [\"mailgun\"]\n"
      "[[route]]\nname = \"x\"\nsenders = [\"*@c.d\"]\nupstreams = [\"mailgun\"]\n",
      "\"x\" names another [[route]]");
  expect_error("[route]\nsenders = [\"*@a.b\"]\nupstreams = [\"mailgun\"]\n", "write [[route]]");
  expect_error("[[route]]\nsenders = [\"*@a.b\"]\nupstreams = [\"mailgun\"]\nsender = \"x\"\n",
               "sender");
  expect_error("[relay]\nrequire_route = true\n",
               "relay.require_route: needs at least one [[route]]");
  expect_error("[server]\nallowed_senders = []\n", "server.allowed_senders: lists no pattern");
}

TEST(Routes, NoRouteMeansTheDefaultRouteOverTheWholeChain) {
  const auto config = parse_config(kTwoUpstreams, "test.toml");
  EXPECT_TRUE(config.routes.empty());
  EXPECT_EQ(config::describe_routes(config), "");
  EXPECT_EQ(config::default_route(3).endpoints, (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_EQ(config::default_route(3).name, "default");
}

std::shared_ptr<const config::Config> policy_config(const std::string& extra) {
  return std::make_shared<const config::Config>(parse_config(
      std::string("[rewrite]\nlocal_domains = [\"vm-1234.internal\"]\n") + extra + kTwoUpstreams,
      "test.toml"));
}

TEST(EnvelopePolicy, AllowedSendersRefuseOthersAtMail) {
  const relay::EnvelopePolicy policy(
      policy_config("[server]\nallowed_senders = [\"*@example.com\"]\n"));
  EXPECT_FALSE(policy.check_sender("app@example.com", "app@example.com", false, nullptr));
  const auto refused =
      policy.check_sender("app@other.example", "app@other.example", false, nullptr);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, 550);
  EXPECT_NE(refused->summary().find("5.7.1"), std::string::npos);
  EXPECT_FALSE(policy.check_sender("", "", false, nullptr))
      << "the null sender is nobody's identity";
  // A user's own list replaces the server's.
  const std::vector<std::string> own{"*@shop.example.com"};
  EXPECT_FALSE(policy.check_sender("a@shop.example.com", "a@shop.example.com", false, &own));
  EXPECT_TRUE(policy.check_sender("app@example.com", "app@example.com", false, &own));
  // A local sender not rewritten is not let through; one the [rewrite] of acceptance
  // replaced is (it leaves with the verified identity).
  EXPECT_TRUE(
      policy.check_sender("root@vm-1234.internal", "root@vm-1234.internal", false, nullptr));
  EXPECT_FALSE(policy.check_sender("root@vm-1234.internal", "alerts@example.com", true, nullptr));
  // A bare name only qualified with the mail domain is not a replacement: still checked.
  EXPECT_TRUE(policy.check_sender("cron", "cron@vm-1234.internal", false, nullptr));
}

TEST(EnvelopePolicy, RequireRouteLooksAtTheRewrittenSender) {
  const relay::EnvelopePolicy policy(
      policy_config("[relay]\nrequire_route = true\n"
                    "[[route]]\nname = \"alerts\"\nsenders = [\"alerts@example.com\"]\n"
                    "upstreams = [\"mailgun\"]\n"));
  EXPECT_FALSE(policy.check_sender("root", "alerts@example.com", true, nullptr));
  EXPECT_TRUE(policy.check_sender("root", "root", false, nullptr));
}

TEST(EnvelopePolicy, RequireRouteRefusesSendersNoRouteMatches) {
  const relay::EnvelopePolicy policy(
      policy_config("[relay]\nrequire_route = true\n"
                    "[[route]]\nname = \"shop\"\nsenders = [\"*@shop.example.com\"]\nupstreams = "
                    "[\"mailgun\"]\n"));
  EXPECT_FALSE(policy.check_sender("a@shop.example.com", "a@shop.example.com", false, nullptr));
  EXPECT_EQ(policy.route_for("a@shop.example.com"), "shop");
  const auto refused = policy.check_sender("a@example.com", "a@example.com", false, nullptr);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, 550);
  EXPECT_TRUE(policy.check_sender("", "", false, nullptr));
}

TEST(EnvelopePolicy, LocalRecipientsGoToTheirAliasesOrAreRefused) {
  const relay::EnvelopePolicy policy(policy_config(
      "[aliases]\nroot = [\"ops@example.com\", \"admin\"]\nadmin = \"boss@example.com\"\n"));
  EXPECT_EQ(policy.map_recipient("root").addresses,
            (std::vector<std::string>{"ops@example.com", "boss@example.com"}));
  EXPECT_EQ(policy.map_recipient("ROOT@vm-1234.internal").addresses,
            (std::vector<std::string>{"ops@example.com", "boss@example.com"}));
  EXPECT_EQ(policy.map_recipient("someone@example.com").addresses,
            (std::vector<std::string>{"someone@example.com"}));
  const auto unmapped = policy.map_recipient("www-data");
  EXPECT_TRUE(unmapped.addresses.empty());
  ASSERT_TRUE(unmapped.refusal);
  EXPECT_EQ(unmapped.refusal->code, 550);
  EXPECT_NE(unmapped.refusal->summary().find("5.1.1"), std::string::npos);
}

TEST(EnvelopePolicy, DefaultCatchesEveryOtherLocalName) {
  const relay::EnvelopePolicy policy(policy_config("[aliases]\ndefault = \"ops@example.com\"\n"));
  EXPECT_EQ(policy.map_recipient("www-data@vm-1234.internal").addresses,
            (std::vector<std::string>{"ops@example.com"}));
}

}  // namespace
