// The operator's view: one log line when a session opens and one when it closes, whichever
// way it ends, and one line per message, each carrying the session id.
#include <gtest/gtest.h>

#include <regex>

#include "portrelay/app/daemon.hpp"
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

TEST(RelayLogging, EverySessionLogsOpenAndCloseOnceAndEveryMessageOnce) {
  FakeUpstream upstream;
  auto config = config::parse_config(
      "[server]\nlisten = [\"127.0.0.1:0\"]\nhostname = \"relay.test\"\ncommand_timeout = "
      "\"300ms\"\n"
      "[metrics]\nenabled = false\n[[upstream]]\nname = \"a\"\nhost = \"127.0.0.1\"\ntls = "
      "\"none\"\n"
      "port = " +
          std::to_string(upstream.port()) + "\n",
      "t.toml");
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
      ASSERT_EQ(client.send_message("a@c.test", {"b@d.test"}, "Subject: x\r\n\r\ny\r\n").code, 250);
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
}

}  // namespace
}  // namespace portrelay::test
