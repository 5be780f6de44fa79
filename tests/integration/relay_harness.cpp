#include "relay_harness.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <csignal>
#include <cstdlib>
#include <functional>

#include "portrelay/base/log.hpp"
#include "portrelay/config/config.hpp"

namespace portrelay::test {

std::string RelaySettings::toml() const {
  std::string text;
  text += "[server]\nlisten = [\"127.0.0.1:0\"]\nhostname = \"relay.test\"\n";
  text += std::string("add_missing_headers = ") + (add_missing_headers ? "true" : "false") + "\n";
  text += server_extra + "\n";
  text += "[relay]\n";
  // Keys set in relay_extra win: drop the default of the same name.
  auto unless_overridden = [&](const std::string& key, const std::string& value) {
    if (relay_extra.find(key + " ") == std::string::npos &&
        relay_extra.find(key + "=") == std::string::npos)
      text += key + " = \"" + value + "\"\n";
  };
  unless_overridden("connect_timeout", connect_timeout);
  unless_overridden("greeting_timeout", greeting_timeout);
  unless_overridden("command_timeout", command_timeout);
  unless_overridden("data_timeout", data_timeout);
  unless_overridden("probe_interval", probe_interval);
  text += relay_extra + "\n";
  for (const auto& upstream : upstreams) text += upstream + "\n";
  text += "[metrics]\n" + metrics + "\n";
  if (!spool.empty()) text += "[spool]\n" + spool + "\n";
  return text;
}

std::string plain_upstream(const std::string& name, std::uint16_t port, const std::string& extra) {
  return "[[upstream]]\nname = \"" + name +
         "\"\nhost = \"127.0.0.1\"\nport = " + std::to_string(port) + "\ntls = \"none\"\n" + extra +
         "\n";
}

std::string tls_upstream(const std::string& name, std::uint16_t port, const std::string& tls,
                         const std::string& ca_file, const std::string& extra) {
  return "[[upstream]]\nname = \"" + name +
         "\"\nhost = \"127.0.0.1\"\nport = " + std::to_string(port) + "\ntls = \"" + tls +
         "\"\nca_file = \"" + ca_file + "\"\ntls_server_name = \"localhost\"\n" + extra + "\n";
}

namespace {

// Parses `{a="x",b="y"}` (Prometheus text format escapes) starting at text[pos] == '{'.
std::map<std::string, std::string> parse_labels(std::string_view text, std::size_t& pos) {
  std::map<std::string, std::string> labels;
  ++pos;  // '{'
  while (pos < text.size() && text[pos] != '}') {
    std::size_t eq = text.find('=', pos);
    std::string key(text.substr(pos, eq - pos));
    pos = eq + 2;  // skip ="
    std::string value;
    while (pos < text.size() && text[pos] != '"') {
      if (text[pos] == '\\' && pos + 1 < text.size()) {
        ++pos;
        value += text[pos] == 'n' ? '\n' : text[pos];
      } else {
        value += text[pos];
      }
      ++pos;
    }
    ++pos;  // closing quote
    if (pos < text.size() && text[pos] == ',') ++pos;
    labels[key] = value;
  }
  ++pos;  // '}'
  return labels;
}

void for_each_sample(const std::string& text, std::string_view name,
                     const std::map<std::string, std::string>& labels,
                     const std::function<void(double)>& visit);

}  // namespace

double metric_value(const std::string& text, std::string_view name,
                    const std::map<std::string, std::string>& labels) {
  double sum = 0;
  for_each_sample(text, name, labels, [&](double value) { sum += value; });
  return sum;
}

bool metric_exists(const std::string& text, std::string_view name,
                   const std::map<std::string, std::string>& labels) {
  bool found = false;
  for_each_sample(text, name, labels, [&](double) { found = true; });
  return found;
}

namespace {

void for_each_sample(const std::string& text, std::string_view name,
                     const std::map<std::string, std::string>& labels,
                     const std::function<void(double)>& visit) {
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    std::size_t name_end = line.find_first_of("{ ");
    if (name_end == std::string_view::npos || line.substr(0, name_end) != name) continue;
    std::size_t pos = name_end;
    std::map<std::string, std::string> found;
    if (line[pos] == '{') found = parse_labels(line, pos);
    bool match = true;
    for (const auto& [key, value] : labels) {
      auto it = found.find(key);
      if (it == found.end() || it->second != value) match = false;
    }
    if (!match) continue;
    visit(std::stod(std::string(line.substr(pos))));
  }
}

}  // namespace

RelayUnderTest::RelayUnderTest(const RelaySettings& settings) : RelayUnderTest(settings.toml()) {}

RelayUnderTest::RelayUnderTest(const std::string& toml) {
  daemon_ = std::make_unique<DaemonThread>(config::parse_config(toml, "test.toml"));
  daemon_->start();
}

RelayUnderTest::~RelayUnderTest() {
  daemon_->stop(1s);
  // Every handle the relay opened was closed: nothing leaked past shutdown.
  EXPECT_EQ(daemon_->loop_close_status(), 0) << uv_strerror(daemon_->loop_close_status());
}

std::unique_ptr<SmtpTestClient> RelayUnderTest::client(std::chrono::milliseconds timeout) {
  auto client = std::make_unique<SmtpTestClient>(timeout);
  client->connect("127.0.0.1", port());
  SmtpReply greeting = client->read_reply();
  EXPECT_EQ(greeting.code, 220) << greeting.raw;
  SmtpReply ehlo = client->command("EHLO client.test");
  EXPECT_EQ(ehlo.code, 250) << ehlo.raw;
  return client;
}

std::string sample_message(const std::string& subject) {
  return "From: <sender@example.test>\r\nTo: <rcpt@example.test>\r\nSubject: " + subject +
         "\r\n\r\nHello from the integration tests.\r\n";
}

void QuietLogs::SetUp() {
  // As `main` does for the binary: a client resetting mid-write must not end the process.
  std::signal(SIGPIPE, SIG_IGN);
  if (!std::getenv("PORTRELAY_TEST_LOG")) log::set_enabled(false);
}

namespace {
[[maybe_unused]] auto* const quiet_logs = ::testing::AddGlobalTestEnvironment(new QuietLogs);
}

void begin_data(SmtpTestClient& client) {
  EXPECT_EQ(client.command("MAIL FROM:<a@example.test>").code, 250);
  EXPECT_EQ(client.command("RCPT TO:<b@example.test>").code, 250);
  EXPECT_EQ(client.command("DATA").code, 354);
}

HttpReply http_get(std::uint16_t port, const std::string& path) {
  HttpReply reply;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    const std::string request =
        "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    (void)!::write(fd, request.data(), request.size());
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
  }
  ::close(fd);
  if (response.rfind("HTTP/1.", 0) == 0 && response.size() > 12)
    reply.status = std::stoi(response.substr(9, 3));
  auto body = response.find("\r\n\r\n");
  if (body != std::string::npos) reply.body = response.substr(body + 4);
  return reply;
}

}  // namespace portrelay::test
