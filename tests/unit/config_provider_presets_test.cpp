// Per-port TLS in `ports` and `provider` presets of [[upstream]] (docs/CONFIGURATION.md).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "portrelay/config/config.hpp"

namespace {

using portrelay::config::Config;
using portrelay::config::ConfigError;
using portrelay::config::describe_chain;
using portrelay::config::parse_config;
using portrelay::config::TlsMode;

Config parse(const std::string& text) { return parse_config(text, "portrelay.toml"); }

std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "(no error)";
}

// "host:port tls" for every endpoint, in chain order.
std::vector<std::string> chain_of(const Config& config) {
  std::vector<std::string> lines;
  for (const auto& endpoint : config.chain) {
    lines.push_back(endpoint.host + ":" + std::to_string(endpoint.port) + " " +
                    to_string(endpoint.tls));
  }
  return lines;
}

using Lines = std::vector<std::string>;

// ---------------------------------------------------------------------------------------------
// Per-port TLS

TEST(ConfigPortTls, InlineTableSetsTheModeOfOnePort) {
  const Config config = parse(
      "[[upstream]]\nhost = \"email-smtp.us-east-1.amazonaws.com\"\n"
      "ports = [587, { port = 2465, tls = \"implicit\" }, 2525, 465, { port = 2587 }]\n");
  EXPECT_EQ(chain_of(config), (Lines{"email-smtp.us-east-1.amazonaws.com:587 starttls",
                                     "email-smtp.us-east-1.amazonaws.com:2465 implicit",
                                     "email-smtp.us-east-1.amazonaws.com:2525 starttls",
                                     "email-smtp.us-east-1.amazonaws.com:465 implicit",
                                     "email-smtp.us-east-1.amazonaws.com:2587 starttls"}));
}

TEST(ConfigPortTls, InlineTableWinsOverTheTableTls) {
  const Config config = parse(
      "[[upstream]]\nhost = \"127.0.0.1\"\ntls = \"none\"\n"
      "ports = [2525, { port = 2465, tls = \"implicit\" }, 465]\n");
  EXPECT_EQ(chain_of(config),
            (Lines{"127.0.0.1:2525 none", "127.0.0.1:2465 implicit", "127.0.0.1:465 none"}));
}

TEST(ConfigPortTls, CheckShowsTheModeOfEachPort) {
  const Config config = parse(
      "[[upstream]]\nhost = \"mx.example.com\"\nports = [587, { port = 2465, tls = "
      "\"implicit\" }]\n");
  EXPECT_EQ(describe_chain(config),
            "upstream chain (2 endpoints, in order of preference):\n"
            "1  mx.example.com:587   tls=starttls  name=mx.example.com  auth=(no auth)\n"
            "2  mx.example.com:2465  tls=implicit  name=mx.example.com  auth=(no auth)\n");
}

TEST(ConfigPortTls, ErrorsPointAtTheElement) {
  const std::string head = "[[upstream]]\nhost = \"a.example\"\n";
  EXPECT_EQ(error_of(head + "ports = [587, { port = 2465, tsl = \"implicit\" }]\n"),
            "portrelay.toml:3:30: unknown key \"tsl\" in an upstream.ports entry; did you mean "
            "\"tls\"?");
  EXPECT_EQ(error_of(head + "ports = [587, { port = 2465, tls = \"ssl\" }]\n"),
            "portrelay.toml:3:36: upstream.ports.tls: \"ssl\" is not a TLS mode (use "
            "\"implicit\", \"starttls\", \"opportunistic\" or \"none\")");
  EXPECT_EQ(error_of(head + "ports = [587, { port = 70000, tls = \"implicit\" }]\n"),
            "portrelay.toml:3:24: upstream.ports.port: 70000 is not a port (must be between 1 "
            "and 65535)");
  EXPECT_EQ(error_of(head + "ports = [2465, { port = 2465, tls = \"implicit\" }]\n"),
            "portrelay.toml:3:16: upstream.ports: port 2465 is listed twice");
  EXPECT_EQ(error_of(head + "ports = [587, { tls = \"implicit\" }]\n"),
            "portrelay.toml:3:15: upstream.ports: entry has no port (write { port = 2465, tls = "
            "\"implicit\" })");
  EXPECT_EQ(error_of(head + "ports = [587, \"2465\"]\n"),
            "portrelay.toml:3:15: upstream.ports: expected a port number or { port = 2465, tls "
            "= \"implicit\" }, got string");
  EXPECT_EQ(error_of(head + "ports = [{ port = \"x\" }]\n"),
            "portrelay.toml:3:19: upstream.ports.port: expected an integer, got string");
}

TEST(ConfigPortTls, ClearTextRulesApplyPerPort) {
  setenv("PORTRELAY_TEST_PORT_TLS_KEY", "x", 1);
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a.example\"\nusername = \"u\"\n"
                     "password_env = \"PORTRELAY_TEST_PORT_TLS_KEY\"\n"
                     "ports = [587, { port = 2525, tls = \"none\" }]\n"),
            "portrelay.toml:5:36: upstream.ports.tls: \"none\" with username set: credentials "
            "would travel in clear text (use \"starttls\" or \"implicit\")");
  unsetenv("PORTRELAY_TEST_PORT_TLS_KEY");
  const Config config = parse(
      "[[upstream]]\nhost = \"a.example\"\n"
      "ports = [587, { port = 2525, tls = \"opportunistic\" }, { port = 25, tls = \"none\" }]\n");
  ASSERT_EQ(config.warnings.size(), 2u);
  EXPECT_EQ(config.warnings[0],
            "portrelay.toml:3: upstream.ports.tls: \"opportunistic\" toward a.example, which is "
            "not a loopback address: anyone on the path can remove STARTTLS from the EHLO reply "
            "and read the mail (use \"starttls\" or \"implicit\")");
  EXPECT_NE(config.warnings[1].find("\"none\" toward a.example"), std::string::npos);
  // A table-wide mode is warned about once, not once per port.
  EXPECT_EQ(parse("[[upstream]]\nhost = \"a.example\"\nports = [25, 2525]\ntls = \"none\"\n")
                .warnings.size(),
            1u);
}

TEST(ConfigPortTls, PlainPort2465WithTheStartTlsDefaultIsWarnedAbout) {
  const Config config = parse("[[upstream]]\nhost = \"a.example\"\nports = [587, 2465]\n");
  ASSERT_EQ(config.warnings.size(), 1u);
  EXPECT_EQ(config.warnings[0],
            "portrelay.toml:3: upstream.ports: port 2465 is used with \"starttls\" (the default "
            "for any port but 465); providers that listen there speak implicit TLS: write { port "
            "= 2465, tls = \"implicit\" } if yours does");
  // Not when the mode is written, or known from a preset.
  EXPECT_TRUE(parse("[[upstream]]\nhost = \"a.example\"\nports = [{ port = 2465, tls = "
                    "\"starttls\" }]\n")
                  .warnings.empty());
  EXPECT_TRUE(parse("[[upstream]]\nhost = \"a.example\"\nport = 2465\ntls = \"starttls\"\n")
                  .warnings.empty());
  EXPECT_TRUE(parse("[[upstream]]\nprovider = \"resend\"\nports = [2465]\n").warnings.empty());
  EXPECT_EQ(parse("[[upstream]]\nhost = \"a.example\"\nport = 2465\n").warnings.size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Provider presets: every preset expands to the documented hosts, ports and modes.

struct PresetCase {
  std::string keys;  // the [[upstream]] body
  Lines chain;
  std::string provider_label;
};

TEST(ConfigProviderPresets, EveryPresetExpandsToItsDocumentedEndpoints) {
  const std::vector<PresetCase> cases = {
      {"provider = \"ses\"\nregion = \"us-east-1\"\n",
       {"email-smtp.us-east-1.amazonaws.com:2587 starttls",
        "email-smtp.us-east-1.amazonaws.com:2465 implicit",
        "email-smtp.us-east-1.amazonaws.com:587 starttls",
        "email-smtp.us-east-1.amazonaws.com:465 implicit"},
       "ses/us-east-1"},
      {"provider = \"ses\"\nregion = \"eu-west-1\"\n",
       {"email-smtp.eu-west-1.amazonaws.com:2587 starttls",
        "email-smtp.eu-west-1.amazonaws.com:2465 implicit",
        "email-smtp.eu-west-1.amazonaws.com:587 starttls",
        "email-smtp.eu-west-1.amazonaws.com:465 implicit"},
       "ses/eu-west-1"},
      {"provider = \"sendgrid\"\n",
       {"smtp.sendgrid.net:2525 starttls", "smtp.sendgrid.net:587 starttls",
        "smtp.sendgrid.net:465 implicit"},
       "sendgrid"},
      {"provider = \"mailgun\"\nregion = \"us\"\n",
       {"smtp.mailgun.org:2525 starttls", "smtp.mailgun.org:587 starttls",
        "smtp.mailgun.org:465 implicit"},
       "mailgun/us"},
      {"provider = \"mailgun\"\nregion = \"eu\"\n",
       {"smtp.eu.mailgun.org:2525 starttls", "smtp.eu.mailgun.org:587 starttls",
        "smtp.eu.mailgun.org:465 implicit"},
       "mailgun/eu"},
      {"provider = \"postmark\"\n",
       {"smtp.postmarkapp.com:2525 starttls", "smtp.postmarkapp.com:587 starttls"},
       "postmark"},
      {"provider = \"resend\"\n",
       {"smtp.resend.com:2587 starttls", "smtp.resend.com:2465 implicit",
        "smtp.resend.com:587 starttls", "smtp.resend.com:465 implicit"},
       "resend"},
      {"provider = \"brevo\"\n",
       {"smtp-relay.brevo.com:2525 starttls", "smtp-relay.brevo.com:587 starttls",
        "smtp-relay.brevo.com:465 implicit"},
       "brevo"},
      {"provider = \"gmail\"\n",
       {"smtp.gmail.com:587 starttls", "smtp.gmail.com:465 implicit"},
       "gmail"},
      {"provider = \"microsoft365\"\n", {"smtp.office365.com:587 starttls"}, "microsoft365"},
  };
  for (const PresetCase& preset : cases) {
    const Config config = parse("[[upstream]]\n" + preset.keys);
    EXPECT_EQ(chain_of(config), preset.chain) << preset.keys;
    for (const auto& endpoint : config.chain) {
      EXPECT_EQ(endpoint.provider, preset.provider_label) << preset.keys;
      EXPECT_EQ(endpoint.name, endpoint.host) << preset.keys;
      EXPECT_FALSE(endpoint.credentials.configured()) << preset.keys;
    }
    EXPECT_TRUE(config.warnings.empty()) << preset.keys;
  }
}

TEST(ConfigProviderPresets, DocumentedUserNamesApplyWhenAPasswordIsSet) {
  setenv("PORTRELAY_TEST_PRESET_KEY", "x", 1);
  const Config config = parse(
      "[[upstream]]\nprovider = \"sendgrid\"\npassword_env = \"PORTRELAY_TEST_PRESET_KEY\"\n"
      "[[upstream]]\nprovider = \"resend\"\npassword_env = \"PORTRELAY_TEST_PRESET_KEY\"\n"
      "[[upstream]]\nprovider = \"postmark\"\nusername = \"server-token\"\n"
      "password_env = \"PORTRELAY_TEST_PRESET_KEY\"\n");
  EXPECT_EQ(config.chain.at(0).credentials.username, "apikey");
  EXPECT_EQ(config.chain.at(3).credentials.username, "resend");
  EXPECT_EQ(config.chain.at(7).credentials.username, "server-token");
  // A preset without a documented user name still needs one with a password.
  EXPECT_EQ(error_of("[[upstream]]\nprovider = \"gmail\"\n"
                     "password_env = \"PORTRELAY_TEST_PRESET_KEY\"\n"),
            "portrelay.toml:3:16: upstream.password_env: is set but upstream.username is not");
  unsetenv("PORTRELAY_TEST_PRESET_KEY");
}

TEST(ConfigProviderPresets, ExplicitKeysOverrideThePreset) {
  // username overrides the documented one.
  setenv("PORTRELAY_TEST_PRESET_KEY", "x", 1);
  EXPECT_EQ(parse("[[upstream]]\nprovider = \"sendgrid\"\nusername = \"other\"\n"
                  "password_env = \"PORTRELAY_TEST_PRESET_KEY\"\n")
                .chain.at(0)
                .credentials.username,
            "other");
  unsetenv("PORTRELAY_TEST_PRESET_KEY");
  // ports replaces the list; a plain port takes the mode the preset documents for it, so
  // SES's 2465 is implicit TLS without saying so. Unknown ports follow the 465 rule.
  EXPECT_EQ(chain_of(parse("[[upstream]]\nprovider = \"ses\"\nregion = \"us-west-2\"\n"
                           "ports = [2465, 587, 25]\n")),
            (Lines{"email-smtp.us-west-2.amazonaws.com:2465 implicit",
                   "email-smtp.us-west-2.amazonaws.com:587 starttls",
                   "email-smtp.us-west-2.amazonaws.com:25 starttls"}));
  // port (singular) too, and an inline table's tls beats the preset's.
  EXPECT_EQ(chain_of(parse("[[upstream]]\nprovider = \"resend\"\nport = 2465\n")),
            (Lines{"smtp.resend.com:2465 implicit"}));
  EXPECT_EQ(chain_of(parse("[[upstream]]\nprovider = \"resend\"\n"
                           "ports = [{ port = 2465, tls = \"starttls\" }]\n")),
            (Lines{"smtp.resend.com:2465 starttls"}));
  // tls with ports applies to the plain ports, over the preset.
  EXPECT_EQ(chain_of(parse("[[upstream]]\nprovider = \"gmail\"\nports = [465, 587]\n"
                           "tls = \"starttls\"\n")),
            (Lines{"smtp.gmail.com:465 starttls", "smtp.gmail.com:587 starttls"}));
  // host replaces the preset's host (a tunnel, a regional alias) and keeps its ports.
  const Config tunnel = parse(
      "[[upstream]]\nprovider = \"postmark\"\nhost = \"127.0.0.1\"\nname = \"postmark-tunnel\"\n");
  EXPECT_EQ(chain_of(tunnel), (Lines{"127.0.0.1:2525 starttls", "127.0.0.1:587 starttls"}));
  EXPECT_EQ(tunnel.chain.at(0).name, "postmark-tunnel");
}

TEST(ConfigProviderPresets, CheckPrintsTheExpansion) {
  const Config config = parse("[[upstream]]\nprovider = \"mailgun\"\nregion = \"eu\"\n");
  EXPECT_EQ(describe_chain(config),
            "upstream chain (3 endpoints, in order of preference):\n"
            "1  smtp.eu.mailgun.org:2525  tls=starttls  name=smtp.eu.mailgun.org  auth=(no auth)"
            "  provider=mailgun/eu\n"
            "2  smtp.eu.mailgun.org:587   tls=starttls  name=smtp.eu.mailgun.org  auth=(no auth)"
            "  provider=mailgun/eu\n"
            "3  smtp.eu.mailgun.org:465   tls=implicit  name=smtp.eu.mailgun.org  auth=(no auth)"
            "  provider=mailgun/eu\n");
}

TEST(ConfigProviderPresets, Errors) {
  EXPECT_EQ(error_of("[[upstream]]\nprovider = \"sendgird\"\n"),
            "portrelay.toml:2:12: upstream.provider: \"sendgird\" is not a known provider (use "
            "one of \"ses\", \"sendgrid\", \"mailgun\", \"postmark\", \"resend\", \"brevo\", "
            "\"gmail\", \"microsoft365\", or set host and ports yourself)");
  EXPECT_EQ(error_of("[[upstream]]\nprovider = \"ses\"\n"),
            "portrelay.toml:2:12: upstream.provider: \"ses\" needs region (an AWS region such "
            "as \"us-east-1\")");
  EXPECT_EQ(error_of("[[upstream]]\nprovider = \"mailgun\"\n"),
            "portrelay.toml:2:12: upstream.provider: \"mailgun\" needs region (\"us\" or \"eu\")");
  EXPECT_EQ(error_of("[[upstream]]\nprovider = \"mailgun\"\nregion = \"asia\"\n"),
            "portrelay.toml:3:10: upstream.region: \"asia\" is not a region of provider "
            "\"mailgun\" (use \"us\" or \"eu\")");
  EXPECT_EQ(error_of("[[upstream]]\nprovider = \"ses\"\nregion = \"US-EAST-1\"\n"),
            "portrelay.toml:3:10: upstream.region: \"US-EAST-1\" is not a region of provider "
            "\"ses\" (use an AWS region such as \"us-east-1\")");
  EXPECT_EQ(error_of("[[upstream]]\nprovider = \"ses\"\nregion = \"us-east\"\n"),
            "portrelay.toml:3:10: upstream.region: \"us-east\" is not a region of provider "
            "\"ses\" (use an AWS region such as \"us-east-1\")");
  EXPECT_EQ(error_of("[[upstream]]\nprovider = \"gmail\"\nregion = \"eu\"\n"),
            "portrelay.toml:3:10: upstream.region: provider \"gmail\" has no regions; remove "
            "region");
  EXPECT_EQ(error_of("[[upstream]]\nhost = \"a.example\"\nport = 25\nregion = \"eu\"\n"),
            "portrelay.toml:4:10: upstream.region: is only used with provider (provider = "
            "\"ses\", region = \"us-east-1\")");
  EXPECT_EQ(error_of("[[upstream]]\nprovider = \"ses\"\nregion = \"us-east-1\"\n"
                     "tls = \"implicit\"\n"),
            "portrelay.toml:4:7: upstream.tls: provider \"ses\" sets the TLS mode of each of its "
            "ports; to change it, list the ports too (ports = [587, { port = 2465, tls = "
            "\"implicit\" }])");
  EXPECT_EQ(error_of("[[upstream]]\nport = 587\n"),
            "portrelay.toml:1:1: upstream.host: missing (every [[upstream]] needs a host or a "
            "provider such as provider = \"sendgrid\")");
  // Two tables expanding to the same endpoints collide like written ones do.
  EXPECT_EQ(error_of("[[upstream]]\nprovider = \"gmail\"\n[[upstream]]\nprovider = \"gmail\"\n"),
            "portrelay.toml:3:1: upstream: endpoint smtp.gmail.com:587 is already defined by "
            "the [[upstream]] at line 1; give one of them a different name");
}

}  // namespace
