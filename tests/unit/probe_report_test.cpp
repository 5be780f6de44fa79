// The pure half of `portrelay probe`: verdicts, the endpoint in use, table and JSON output.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "portrelay/probe/probe.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::probe {
namespace {

using namespace std::chrono_literals;
using portrelay::FailureReason;

config::Endpoint make_endpoint(std::size_t index, std::string name, std::string host,
                               std::uint16_t port, config::TlsMode tls) {
  config::Endpoint endpoint;
  endpoint.index = index;
  endpoint.name = std::move(name);
  endpoint.host = std::move(host);
  endpoint.port = port;
  endpoint.tls = tls;
  return endpoint;
}

EndpointProbe failed(FailureReason reason, std::string detail = "") {
  EndpointProbe probe;
  probe.endpoint = make_endpoint(0, "p", "h", 25, config::TlsMode::StartTls);
  probe.reason = reason;
  probe.detail = std::move(detail);
  return probe;
}

EndpointProbe usable(bool authenticated) {
  EndpointProbe probe;
  probe.endpoint = make_endpoint(0, "p", "h", 25, config::TlsMode::StartTls);
  probe.ok = true;
  probe.trace.authenticated = authenticated;
  return probe;
}

// The three endpoints used by the table and JSON tests: blocked, implicit TLS with AUTH,
// plaintext without AUTH.
std::vector<EndpointProbe> sample_chain() {
  std::vector<EndpointProbe> probes(3);
  probes[0].endpoint =
      make_endpoint(0, "provider", "smtp.example.com", 587, config::TlsMode::StartTls);
  probes[0].reason = FailureReason::Timeout;
  probes[0].detail = "no TCP answer within 10s";
  probes[0].trace.addresses = {"192.0.2.1"};
  probes[0].trace.resolved_ms = 0.3;

  probes[1].endpoint =
      make_endpoint(1, "provider", "smtp.example.com", 465, config::TlsMode::Implicit);
  probes[1].ok = true;
  probes[1].trace.addresses = {"192.0.2.1"};
  probes[1].trace.connected_address = "192.0.2.1";
  probes[1].trace.resolved_ms = 0.3;
  probes[1].trace.tcp_ms = 1.4;
  probes[1].trace.tls_ms = 8.2;
  probes[1].trace.ready_ms = 12.6;
  probes[1].trace.tls_version = "TLSv1.3";
  probes[1].trace.tls_cipher = "TLS_AES_256_GCM_SHA384";
  probes[1].trace.greeting = "220 smtp.example.com ESMTP";
  probes[1].trace.extensions = {"PIPELINING", "AUTH PLAIN LOGIN"};
  probes[1].trace.authenticated = true;

  probes[2].endpoint = make_endpoint(2, "backup", "10.0.0.7", 25, config::TlsMode::None);
  probes[2].ok = true;
  probes[2].trace.tcp_ms = 0.2;
  probes[2].trace.ready_ms = 3.1;
  probes[2].trace.greeting = "220 backup ready";
  return probes;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

TEST(ProbeReportVerdict, EveryFailureReasonHasAVerdict) {
  const config::Duration timeout = 10s;
  EXPECT_EQ(verdict(failed(FailureReason::Timeout), timeout), "BLOCKED (no answer in 10s)");
  EXPECT_EQ(verdict(failed(FailureReason::Refused), timeout), "REFUSED");
  EXPECT_EQ(verdict(failed(FailureReason::Unreachable), timeout), "UNREACHABLE");
  EXPECT_EQ(verdict(failed(FailureReason::Dns), timeout), "DNS ERROR");
  EXPECT_EQ(verdict(failed(FailureReason::TlsHandshake), timeout), "TLS ERROR");
  EXPECT_EQ(verdict(failed(FailureReason::TlsVerify), timeout), "TLS CERT ERROR");
  EXPECT_EQ(verdict(failed(FailureReason::StartTlsUnavailable), timeout), "NO STARTTLS");
  EXPECT_EQ(verdict(failed(FailureReason::GreetingTimeout), timeout), "NO GREETING");
  EXPECT_EQ(verdict(failed(FailureReason::GreetingRejected), timeout), "REJECTED");
  EXPECT_EQ(verdict(failed(FailureReason::AuthFailed), timeout), "AUTH FAILED");
  EXPECT_EQ(verdict(failed(FailureReason::Protocol), timeout), "PROTOCOL ERROR");
  EXPECT_EQ(verdict(failed(FailureReason::Closed), timeout), "CLOSED");
}

TEST(ProbeReportVerdict, EveryReasonIsCoveredAndDistinct) {
  std::vector<std::string> seen;
  for (auto reason : kAllFailureReasons) {
    std::string text = verdict(failed(reason), 1s);
    EXPECT_NE(text, "ERROR") << portrelay::to_string(reason);
    for (const auto& other : seen) EXPECT_NE(text, other);
    seen.push_back(text);
  }
}

// Every value of the enum, not only the connect reasons: the transaction ones, local
// resources and cooling down used to fall out of the switch and print as "ERROR".
TEST(ProbeReportVerdict, EveryEnumValueHasItsOwnVerdict) {
  EXPECT_EQ(verdict(failed(FailureReason::TransactionTimeout), 1s), "NO REPLY (timeout)");
  EXPECT_EQ(verdict(failed(FailureReason::TransactionReset), 1s), "RESET");
  EXPECT_EQ(verdict(failed(FailureReason::TransactionProtocol), 1s),
            "PROTOCOL ERROR (transaction)");
  EXPECT_EQ(verdict(failed(FailureReason::LocalResources), 1s), "LOCAL ERROR (out of resources)");
  EXPECT_EQ(verdict(failed(FailureReason::CoolingDown), 1s), "COOLING DOWN");
  std::vector<std::string> seen;
  for (int value = 0; value <= static_cast<int>(FailureReason::CoolingDown); ++value) {
    const auto reason = static_cast<FailureReason>(value);
    std::string text = verdict(failed(reason), 1s);
    EXPECT_NE(text, "ERROR") << portrelay::to_string(reason);
    for (const auto& other : seen) EXPECT_NE(text, other) << portrelay::to_string(reason);
    seen.push_back(text);
  }
}

TEST(ProbeReportVerdict, BlockedNamesTheConnectTimeoutInItsUnit) {
  EXPECT_EQ(verdict(failed(FailureReason::Timeout), 300ms), "BLOCKED (no answer in 300ms)");
  EXPECT_EQ(verdict(failed(FailureReason::Timeout), 1500ms), "BLOCKED (no answer in 1500ms)");
  EXPECT_EQ(verdict(failed(FailureReason::Timeout), 2min), "BLOCKED (no answer in 120s)");
}

TEST(ProbeReportVerdict, OkWithAndWithoutAuth) {
  EXPECT_EQ(verdict(usable(false), 10s), "OK");
  EXPECT_EQ(verdict(usable(true), 10s), "OK (AUTH OK)");
}

TEST(ProbeReportVerdict, FailureWithoutReasonIsAProtocolError) {
  EndpointProbe probe;
  EXPECT_EQ(verdict(probe, 10s), "PROTOCOL ERROR");
}

TEST(ProbeReportInUse, FirstUsableInChainOrder) {
  EXPECT_EQ(endpoint_in_use({}), std::nullopt);
  EXPECT_EQ(endpoint_in_use({failed(FailureReason::Timeout), failed(FailureReason::Refused)}),
            std::nullopt);
  EXPECT_EQ(endpoint_in_use({failed(FailureReason::Timeout), usable(true), usable(false)}), 1u);
  EXPECT_EQ(endpoint_in_use({usable(false), usable(true)}), 0u);
  EXPECT_EQ(endpoint_in_use(sample_chain()), 1u);
}

TEST(ProbeReportTable, ExactLayout) {
  auto lines = lines_of(format_table(sample_chain(), 10s));
  ASSERT_EQ(lines.size(), 6u);
  // Each column as wide as its widest cell, two spaces between columns.
  EXPECT_EQ(
      lines[0],
      "#  ENDPOINT                         TLS       VERDICT                     TCP   READY  "
      "DETAIL");
  EXPECT_EQ(
      lines[1],
      "1  provider:587 (smtp.example.com)  starttls  BLOCKED (no answer in 10s)  -     -      "
      "no TCP answer within 10s");
  EXPECT_EQ(
      lines[2],
      "2  provider:465 (smtp.example.com)  implicit  OK (AUTH OK)                1 ms  13 ms  "
      "TLSv1.3; 220 smtp.example.com ESMTP");
  EXPECT_EQ(
      lines[3],
      "3  backup:25 (10.0.0.7)             none      OK                          0 ms  3 ms   "
      "plaintext; 220 backup ready");
  EXPECT_EQ(lines[4], "");
  EXPECT_EQ(lines[5], "The relay would use now: provider:465 (endpoint 2 of 3)");
}

// Where each header starts; every cell of that column must start there too.
std::vector<std::size_t> column_starts(const std::string& header) {
  std::vector<std::size_t> starts;
  for (const char* name : {"#", "ENDPOINT", "TLS", "VERDICT", "TCP", "READY", "DETAIL"})
    starts.push_back(header.find(name));
  return starts;
}

TEST(ProbeReportTable, LongEndpointNamesKeepTheColumnsAligned) {
  auto probes = sample_chain();
  // 64 characters, the longest name the config accepts, and a long host name.
  probes[0].endpoint.name = std::string(64, 'n');
  probes[0].endpoint.host = "relay-with-a-long-name.eu-central-1.mail.example-provider.com";
  probes[2].reason = FailureReason::TransactionTimeout;  // a verdict longer than "OK"
  probes[2].ok = false;
  probes[2].detail = "no reply";
  auto lines = lines_of(format_table(probes, 10s));
  ASSERT_EQ(lines.size(), 6u);
  const auto starts = column_starts(lines[0]);
  for (std::size_t row = 1; row <= 3; ++row) {
    const std::string& line = lines[row];
    const std::vector<std::string> cells = {
        std::to_string(row),
        probes[row - 1].endpoint.label() + " (" + probes[row - 1].endpoint.host + ")",
        config::to_string(probes[row - 1].endpoint.tls), verdict(probes[row - 1], 10s)};
    for (std::size_t column = 0; column < cells.size(); ++column) {
      ASSERT_LT(starts[column], line.size()) << line;
      EXPECT_EQ(line.compare(starts[column], cells[column].size(), cells[column]), 0)
          << "column " << column << " of row " << row << ": " << line;
      if (column > 0) {
        EXPECT_EQ(line[starts[column] - 1], ' ') << line;
      }
    }
    // The millisecond columns start where their headers do, too.
    EXPECT_NE(line[starts[4]], ' ') << line;
    EXPECT_EQ(line[starts[4] - 1], ' ') << line;
    EXPECT_NE(line[starts[5]], ' ') << line;
  }
  EXPECT_EQ(lines[1].substr(starts[6]), "no TCP answer within 10s");
  EXPECT_EQ(lines[3].substr(starts[6]), "no reply");
}

TEST(ProbeReportTable, NothingUsable) {
  auto probes = sample_chain();
  probes.resize(1);
  std::string table = format_table(probes, 10s);
  auto lines = lines_of(table);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[3], "No endpoint is usable: mail would be deferred (451 4.4.1).");
  EXPECT_EQ(table.back(), '\n');
}

// Validates `json` with Python's parser; returns what `script` printed (it gets the parsed
// document as `d`), or "INVALID" if parsing failed.
std::string python_json(const std::string& json, const std::string& script) {
  test::TempDir dir("probe-json");
  std::string input = dir.write_file("in.json", json);
  std::string program = dir.write_file("check.py",
                                       "import json, sys\n"
                                       "try:\n"
                                       "    d = json.load(open(sys.argv[1], encoding='utf-8'))\n"
                                       "except Exception as error:\n"
                                       "    print('INVALID', error)\n"
                                       "    sys.exit(0)\n" +
                                           script);
  std::string command = "/usr/bin/python3 " + program + " " + input;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return "POPEN FAILED";
  std::string output;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  int status = pclose(pipe);
  if (status != 0) return "PYTHON FAILED: " + output;
  return output;
}

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

TEST(ProbeReportJson, ValidJsonWithEveryField) {
  std::string json = format_json(sample_chain(), 10s);
  EXPECT_EQ(json.back(), '\n');
  std::string out = python_json(json,
                                "print(len(d['endpoints']), d['in_use'])\n"
                                "for e in d['endpoints']:\n"
                                "    print(e['index'], e['name'], e['host'], e['port'],\n"
                                "          e['tls_mode'], e['usable'], e['verdict'],\n"
                                "          e['reason'], e['tcp_ms'], e['ready_ms'],\n"
                                "          e['tls_version'], e['extensions'],\n"
                                "          e['authenticated'], e['addresses'])\n");
  EXPECT_EQ(out,
            "3 provider:465\n"
            "1 provider smtp.example.com 587 starttls False BLOCKED (no answer in 10s) timeout "
            "None None  [] False ['192.0.2.1']\n"
            "2 provider smtp.example.com 465 implicit True OK (AUTH OK) None 1.4 12.6 TLSv1.3 "
            "['PIPELINING', 'AUTH PLAIN LOGIN'] True ['192.0.2.1']\n"
            "3 backup 10.0.0.7 25 none True OK None 0.2 3.1  [] False []\n");
}

TEST(ProbeReportJson, NothingUsableGivesNullInUse) {
  auto probes = sample_chain();
  probes.resize(1);
  std::string json = format_json(probes, 10s);
  EXPECT_NE(json.find("\"in_use\":null}"), std::string::npos) << json;
  EXPECT_EQ(python_json(json, "print(d['in_use'] is None)\n"), "True\n");
}

TEST(ProbeReportJson, EscapesQuotesBackslashesAndControlCharacters) {
  auto probes = sample_chain();
  probes[0].detail = std::string("say \"hi\" \\ back\r\n\t\x01 end");
  probes[1].trace.greeting = "220 \"quoted\" host";
  std::string json = format_json(probes, 10s);
  EXPECT_NE(json.find(R"("detail":"say \"hi\" \\ back\u000d\u000a\u0009\u0001 end")"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("greeting":"220 \"quoted\" host")"), std::string::npos) << json;
  EXPECT_EQ(python_json(json,
                        "print(d['endpoints'][0]['detail'].encode().hex())\n"
                        "print(d['endpoints'][1]['greeting'].encode().hex())\n"),
            hex(probes[0].detail) + "\n" + hex(probes[1].trace.greeting) + "\n");
}

// Greetings and EHLO lines come from the upstream and may hold any byte. JSON must be
// UTF-8: valid sequences pass through, anything else is replaced (U+FFFD).
TEST(ProbeReportJson, ServerBytesThatAreNotUtf8StayValidJson) {
  auto probes = sample_chain();
  probes[1].trace.greeting = "220 h\xc3\xa9llo \xff\xfe bad \xe2\x82 cut";
  // Overlong, surrogate, valid 4-byte, above U+10FFFF, truncated at the end.
  probes[1].trace.extensions = {"X-\x80",
                                "\xc0\xaf|\xed\xa0\x80|\xf0\x9f\x98\x80|\xf4\x90\x80\x80|\xe2\x82"};
  std::string json = format_json(probes, 10s);
  EXPECT_EQ(python_json(json,
                        "print(d['endpoints'][1]['greeting'].encode().hex())\n"
                        "print(d['endpoints'][1]['extensions'][0].encode().hex())\n"
                        "print(d['endpoints'][1]['extensions'][1].encode().hex())\n"),
            hex("220 h\xc3\xa9llo \xef\xbf\xbd\xef\xbf\xbd bad \xef\xbf\xbd cut") + "\n" +
                hex("X-\xef\xbf\xbd") + "\n" +
                "efbfbdefbfbd7cefbfbdefbfbdefbfbd7cf09f98807cefbfbdefbfbdefbfbdefbfbd7cefbfbd\n");
}

}  // namespace
}  // namespace portrelay::probe
