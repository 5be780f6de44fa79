// The operator's view: one log line when a session opens and one when it closes, whichever
// way it ends, and one line per message, each carrying the session id and naming the sender
// and every recipient (refused ones with the upstream's answer). A reload switches the
// format (logfmt, JSON) and the level.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "portrelay/app/daemon_thread.hpp"
#include "portrelay/base/log.hpp"
#include "portrelay/config/config.hpp"
#include "support/fake_upstream.hpp"
#include "support/smtp_test_client.hpp"

namespace portrelay::test {
namespace {

using namespace std::chrono_literals;

std::size_t count(const std::string& text, const std::string& pattern) {
  std::regex re(pattern);
  return static_cast<std::size_t>(
      std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator()));
}

std::string config_text(const FakeUpstream& upstream, const std::string& extra = "") {
  return "[server]\nlisten = [\"127.0.0.1:0\"]\nhostname = \"relay.test\"\ncommand_timeout = "
         "\"300ms\"\n"
         "[metrics]\nenabled = false\n[[upstream]]\nname = \"a\"\nhost = \"127.0.0.1\"\ntls = "
         "\"none\"\n"
         "port = " +
         std::to_string(upstream.port()) + "\n" + extra;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Puts the sink back as the other tests expect it.
void restore_log_defaults() {
  log::set_format(log::Format::Logfmt);
  log::set_min_level(log::Level::Info);
  log::set_enabled(false);
}

TEST(RelayLogging, EverySessionLogsOpenAndCloseOnceAndEveryMessageOnce) {
  FakeUpstreamConfig upstream_config;
  upstream_config.rcpt_overrides["nobody@d.test"] =
      StageAction::reply_with("550 5.1.1 No such user");
  FakeUpstream upstream(upstream_config);
  auto config = config::parse_config(config_text(upstream), "t.toml");
  log::set_enabled(true);
  testing::internal::CaptureStderr();
  {
    DaemonThread relay(config);
    relay.start();
    std::uint16_t port = relay.listener_ports().at(0);
    {  // s1: a message, then QUIT
      SmtpTestClient client(5s);
      client.connect("127.0.0.1", port);
      ASSERT_EQ(client.read_reply().code, 220);
      ASSERT_EQ(client.command("EHLO c.test").code, 250);
      ASSERT_EQ(client
                    .send_message("a@c.test", {"b@d.test", "nobody@d.test", "c@d.test"},
                                  "Subject: x\r\n\r\ny\r\n")
                    .code,
                250);
      ASSERT_EQ(client.command("QUIT").code, 221);
      EXPECT_TRUE(client.closed(2s));
    }
    {  // s2: the client just hangs up
      SmtpTestClient client(5s);
      client.connect("127.0.0.1", port);
      ASSERT_EQ(client.read_reply().code, 220);
    }
    {  // s3: idle until the server's timeout
      SmtpTestClient client(5s);
      client.connect("127.0.0.1", port);
      ASSERT_EQ(client.read_reply().code, 220);
      EXPECT_EQ(client.read_reply().code, 421);
      EXPECT_TRUE(client.closed(2s));
    }
    std::this_thread::sleep_for(100ms);
    relay.stop();
  }
  std::string log = testing::internal::GetCapturedStderr();
  log::set_enabled(false);
  for (const char* session : {"s1", "s2", "s3"}) {
    EXPECT_EQ(count(log, std::string("event=session_open session=") + session + " "), 1u) << log;
    EXPECT_EQ(count(log, std::string("event=session_closed session=") + session + " "), 1u) << log;
  }
  EXPECT_EQ(count(log, "event=session_closed session=s1 by=server"), 1u) << log;
  EXPECT_EQ(count(log, "event=session_closed session=s2 by=client"), 1u) << log;
  EXPECT_EQ(count(log, "event=message session=s1 message=s1.1 result=relayed"), 1u) << log;
  EXPECT_EQ(count(log, "event=message "), 1u) << log;
  // Sender, the recipients the upstream took, and the one it refused with its answer.
  EXPECT_EQ(count(log,
                  "event=message session=s1 message=s1.1 result=relayed from=a@c.test "
                  "original_from=a@c.test to=b@d.test,c@d.test refused=\"nobody@d.test: 550 5.1.1 "
                  "No such user\" "
                  "recipients=2 "),
            1u)
      << log;
  // Every line is logfmt: key=value pairs only, starting with ts= and level=.
  for (const std::string& line : lines_of(log)) {
    EXPECT_TRUE(std::regex_search(
        line,
        std::regex(R"(^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(debug|info|warn|error) )"
                   R"(event=\w+( \w+=("([^"\\]|\\.)*"|[^ "=]+))*$)")))
        << line;
  }
}

// A reload to `[log] format = "json"` turns every later line, the reload's own included,
// into one JSON object; `level = "warn"` then drops the info lines (session open/close).
TEST(RelayLogging, ReloadSwitchesFormatAndLevel) {
  FakeUpstream upstream;
  auto config = config::parse_config(config_text(upstream), "t.toml");
  log::set_enabled(true);
  testing::internal::CaptureStderr();
  std::string logfmt_part;
  {
    DaemonThread relay(config);
    relay.start();
    const std::uint16_t port = relay.listener_ports().at(0);
    auto send_one = [&](const std::string& from) {
      SmtpTestClient client(5s);
      client.connect("127.0.0.1", port);
      ASSERT_EQ(client.read_reply().code, 220);
      ASSERT_EQ(client.command("EHLO c.test").code, 250);
      ASSERT_EQ(client.send_message(from, {"b@d.test"}, "Subject: x\r\n\r\ny\r\n").code, 250);
      ASSERT_EQ(client.command("QUIT").code, 221);
      EXPECT_TRUE(client.closed(2s));
    };
    send_one("before@c.test");
    ASSERT_TRUE(relay.reload_text(config_text(upstream, "[log]\nformat = \"json\"\n")));
    send_one("json@c.test");
    ASSERT_TRUE(
        relay.reload_text(config_text(upstream, "[log]\nformat = \"json\"\nlevel = \"warn\"\n")));
    send_one("quiet@c.test");
    std::this_thread::sleep_for(100ms);
    relay.stop();
  }
  const std::string log = testing::internal::GetCapturedStderr();
  restore_log_defaults();

  std::vector<nlohmann::json> objects;
  bool seen_json = false;
  for (const std::string& line : lines_of(log)) {
    if (line.rfind("ts=", 0) == 0) {
      EXPECT_FALSE(seen_json) << "logfmt after the switch: " << line;
      continue;
    }
    seen_json = true;
    objects.push_back(nlohmann::json::parse(line));  // throws on a malformed line
  }
  ASSERT_FALSE(objects.empty()) << log;
  EXPECT_EQ(objects.front().at("event"), "reload") << log;
  std::size_t messages = 0;
  for (const auto& object : objects) {
    EXPECT_TRUE(object.at("ts").is_string());
    EXPECT_TRUE(object.at("level").is_string());
    if (object.at("event") != "message") continue;
    ++messages;
    EXPECT_EQ(object.at("from"), "json@c.test") << object.dump();
    EXPECT_EQ(object.at("to"), "b@d.test") << object.dump();
    EXPECT_EQ(object.at("result"), "relayed") << object.dump();
  }
  EXPECT_EQ(messages, 1u) << log;  // the third message is info: below warn
  EXPECT_NE(log.find("from=before@c.test original_from=before@c.test to=b@d.test"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("quiet@c.test"), std::string::npos) << log;
}

}  // namespace
}  // namespace portrelay::test
