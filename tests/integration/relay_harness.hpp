#pragma once
// Shared pieces of the integration tests: a relay (the real Daemon on its own loop thread)
// built from TOML text, config snippets for loopback upstreams, Prometheus text lookups and
// a client that is already greeted.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "portrelay/app/daemon_thread.hpp"
#include "support/fake_upstream.hpp"
#include "support/smtp_test_client.hpp"

namespace portrelay::test {

using namespace std::chrono_literals;

// Settings every test relay shares: ephemeral loopback listener, no metrics HTTP endpoint,
// short upstream timeouts so failure paths finish quickly.
struct RelaySettings {
  std::string server_extra;  // lines appended to [server]
  // Off unless a test turns it on: most tests compare what the upstream received with what
  // the client sent, byte for byte (identity_rewrite_test.cpp covers the default, on).
  bool add_missing_headers = false;
  std::string relay_extra;  // lines appended to [relay] (may override the defaults below)
  std::string connect_timeout = "300ms";
  std::string greeting_timeout = "1s";
  std::string command_timeout = "2s";
  std::string data_timeout = "5s";
  // Start-up and periodic health probes are off unless a test turns them on: the tests
  // written before them count connections and attempts of message traffic exactly, and a
  // start-up probe would add its own (tests/integration/health_probes_test.cpp covers them).
  std::string probe_interval = "0s";
  std::string metrics = "enabled = false";
  std::vector<std::string> upstreams;  // complete [[upstream]] tables
  std::string spool;                   // lines of a [spool] table; empty: no table
  std::string toml() const;
};

// [[upstream]] table for a plaintext loopback endpoint; `extra` lines are appended.
std::string plain_upstream(const std::string& name, std::uint16_t port,
                           const std::string& extra = "");
// Same, for an endpoint with the given TLS mode ("implicit" / "starttls" / ...).
std::string tls_upstream(const std::string& name, std::uint16_t port, const std::string& tls,
                         const std::string& ca_file, const std::string& extra = "");

// Sum of every sample of `name` whose labels include all of `labels`; 0 if none matches.
double metric_value(const std::string& text, std::string_view name,
                    const std::map<std::string, std::string>& labels = {});
// Whether at least one sample of `name` with all of `labels` is exported (at any value).
bool metric_exists(const std::string& text, std::string_view name,
                   const std::map<std::string, std::string>& labels = {});

class RelayUnderTest {
 public:
  explicit RelayUnderTest(const RelaySettings& settings);
  explicit RelayUnderTest(const std::string& toml);
  ~RelayUnderTest();

  std::uint16_t port() const { return daemon_->listener_ports().at(0); }
  DaemonThread& daemon() { return *daemon_; }
  std::string metrics_text() { return daemon_->metrics_text(); }
  double metric(std::string_view name, const std::map<std::string, std::string>& labels = {}) {
    return metric_value(metrics_text(), name, labels);
  }
  void stop(std::chrono::milliseconds grace = 2s) { daemon_->stop(grace); }
  // Reloads the running relay as SIGHUP does (Daemon::reload on its loop thread) and waits
  // for the outcome: true if the new configuration was applied.
  bool reload(const RelaySettings& settings) { return reload(settings.toml()); }
  bool reload(const std::string& toml) { return daemon_->reload_text(toml, "reload.toml"); }
  bool reload_file(const std::string& path) { return daemon_->reload_file(path); }

  // Connected client that has read the greeting and sent EHLO (250 asserted).
  std::unique_ptr<SmtpTestClient> client(std::chrono::milliseconds timeout = 5s);

 private:
  std::unique_ptr<DaemonThread> daemon_;
};

// GET `path` from 127.0.0.1:`port` over a plain socket, as a kubelet or Prometheus does it
// (Connection: close; 3 s receive timeout).
struct HttpReply {
  int status = 0;  // 0: no answer
  std::string body;
};
HttpReply http_get(std::uint16_t port, const std::string& path);

// The message a test sends, in CRLF form.
std::string sample_message(const std::string& subject = "integration test");

// MAIL FROM:<a@example.test>, RCPT TO:<b@example.test> and DATA, each expected to succeed:
// the client is then inside DATA.
void begin_data(SmtpTestClient& client);

// Silences the daemon's log lines unless PORTRELAY_TEST_LOG is set; tests that assert on
// log content switch the sink on themselves.
class QuietLogs : public ::testing::Environment {
 public:
  void SetUp() override;
};

}  // namespace portrelay::test
