// `portrelay demo`: what a cloud VM sees, played on loopback. A provider host offers
// 587 (silently dropped, as a firewall does), 25 (refused), 465 (implicit TLS + AUTH) and
// 2525 (STARTTLS + AUTH). The real relay, configured from a real TOML file, relays one
// message submitted through its real listener, and the metrics tell the story.
#include <uv.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>

#include "portrelay/app/daemon_thread.hpp"
#include "portrelay/base/log.hpp"
#include "portrelay/cli/commands.hpp"
#include "portrelay/demo/blocked_ports.hpp"
#include "portrelay/demo/sink_server.hpp"
#include "portrelay/demo/test_pki.hpp"
#include "portrelay/net/loop_thread.hpp"
#include "portrelay/probe/probe.hpp"
#include "portrelay/submit/smtp_submission.hpp"

namespace portrelay::cli {
namespace {

constexpr const char* kUser = "demo";
constexpr const char* kPasswordEnv = "PORTRELAY_DEMO_PASSWORD";
constexpr const char* kPassword = "demo-secret-not-for-production";

struct ProviderPorts {
  std::string host;
  std::uint16_t blocked = 587, refused = 25, implicit_tls = 465, starttls = 2525;
};

// Provider ports that work, each a SinkServer, served on their own loop thread.
class ProviderThread {
 public:
  explicit ProviderThread(std::vector<demo::SinkOptions> ports) {
    thread_.start([this, ports = std::move(ports)](net::Loop& loop) {
      for (const auto& options : ports) {
        sinks_.push_back(std::make_unique<demo::SinkServer>(loop.uv(), options));
        if (int rc = sinks_.back()->start(); rc != 0) {
          error_ = uv_strerror(rc);
          sinks_.clear();
          break;
        }
      }
      return net::LoopThread::Hooks{[this]() { sinks_.clear(); }, nullptr};
    });
  }
  const std::string& error() const { return error_; }
  std::uint64_t delivered(std::size_t i) const {
    return i < sinks_.size() ? sinks_[i]->messages() : 0;
  }
  // The port actually bound (it differs from the requested one when that was 0).
  std::uint16_t port(std::size_t i) const { return sinks_.at(i)->port(); }

 private:
  std::vector<std::unique_ptr<demo::SinkServer>> sinks_;
  std::string error_;
  net::LoopThread thread_;  // last: stopped (joined) before the servers above are freed
};

std::string demo_config(const ProviderPorts& ports, const std::string& ca_file) {
  std::ostringstream toml;
  toml << "[server]\n"
       << "listen = [\"127.0.0.1:0\"]          # any free port\n"
       << "hostname = \"demo-relay.portrelay.test\"\n\n"
       << "[relay]\n"
       << "connect_timeout = \"1s\"             # the cost of a silently dropped port\n\n"
       << "[metrics]\n"
       << "enabled = false                    # the demo prints them instead\n";
  // `ports_line` is "ports = [...]" or "port = N\ntls = ...".
  auto upstream = [&](const std::string& ports_line) {
    toml << "\n[[upstream]]\nname = \"provider\"\nhost = \"" << ports.host << "\"\n"
         << ports_line << "\n"
         << "tls_server_name = \"localhost\"     # the name on the demo certificate\n"
         << "ca_file = \"" << ca_file << "\"\n"
         << "username = \"" << kUser << "\"\n"
         << "password_env = \"" << kPasswordEnv << "\"\n";
  };
  if (ports.implicit_tls == 465) {
    upstream("ports = [587, 25, 465, 2525]       # 465 -> implicit TLS, the others -> STARTTLS");
  } else {
    // Not the real port numbers, so the TLS mode cannot follow from them: one table each.
    for (auto [port, tls] : {std::pair{ports.blocked, "starttls"},
                             {ports.refused, "starttls"},
                             {ports.implicit_tls, "implicit"},
                             {ports.starttls, "starttls"}})
      upstream("port = " + std::to_string(port) + "\ntls = \"" + tls + "\"");
  }
  return toml.str();
}

// Binds the simulated blocked ports, preferring the real port numbers on 127.0.8.1.
bool bind_blocked_ports(ProviderPorts& ports, int port_base,
                        std::unique_ptr<demo::BlackholePort>& blackhole,
                        std::unique_ptr<demo::RefusedPort>& refused) {
  auto attempt = [&](const std::string& host, std::uint16_t blocked, std::uint16_t refused_port) {
    try {
      blackhole = std::make_unique<demo::BlackholePort>(host, blocked);
      refused = std::make_unique<demo::RefusedPort>(host, refused_port);
      ports.host = host;
      ports.blocked = blackhole->port();
      ports.refused = refused->port();
      return true;
    } catch (const std::exception&) {
      blackhole.reset();
      refused.reset();
      return false;
    }
  };
  if (port_base > 0) {
    ports.implicit_tls = static_cast<std::uint16_t>(port_base + 2);
    ports.starttls = static_cast<std::uint16_t>(port_base + 3);
    return attempt("127.0.0.1", static_cast<std::uint16_t>(port_base),
                   static_cast<std::uint16_t>(port_base + 1));
  }
  if (attempt("127.0.8.1", 587, 25)) return true;
  // Not root, or the ports are taken: same roles on free ports.
  ports.implicit_tls = 0;
  ports.starttls = 0;
  return attempt("127.0.0.1", 0, 0);
}

// The same SMTP client as `portrelay sendmail`, with its dialogue collected for display.
struct Sent {
  bool delivered = false;
  std::string final_reply;
  std::vector<std::string> transcript;
};

std::pair<Sent, long long> send(std::uint16_t port, const std::string& subject) {
  submit::SubmissionRequest request;
  request.host = "127.0.0.1";
  request.port = port;
  request.helo_name = "demo-client.portrelay.test";
  request.sender = "app@vm.portrelay.test";
  request.recipients = {"someone@example.test"};
  request.content = "Subject: " + subject + "\r\n\r\nHello through the failover chain.\r\n";
  request.reply_timeout = request.final_reply_timeout = std::chrono::seconds(30);
  Sent sent;
  auto started = std::chrono::steady_clock::now();
  auto result = submit::submit_message(
      request, [&](const std::string& line) { sent.transcript.push_back(line); });
  auto elapsed = std::chrono::steady_clock::now() - started;
  sent.delivered = result.outcome == submit::SubmissionResult::Outcome::kDelivered;
  sent.final_reply = result.detail;
  return {sent, std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()};
}

void print_metrics(const std::string& text, bool spool) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#' || line.find("_bucket") != std::string::npos) continue;
    auto starts = [&](const char* prefix) { return line.rfind(prefix, 0) == 0; };
    bool interesting = spool
                           ? starts("portrelay_queue_") || starts("portrelay_delivery_") ||
                                 starts("portrelay_spool_sync_seconds_count") ||
                                 starts("portrelay_messages_total")
                           : starts("portrelay_upstream_") || starts("portrelay_failovers_total") ||
                                 starts("portrelay_messages_total");
    if (!interesting) continue;
    std::string value = line.substr(line.rfind(' ') + 1);
    if (value == "0") continue;  // every series exists from the start; show what moved
    std::cout << "  " << line << "\n";
  }
}

// Step 5: the provider has an outage. The relay (mode = "spool") acknowledges the message
// once it is on disk, probes the provider while the message waits, and delivers it the
// moment the provider answers again.
bool spool_step(const std::string& spool_dir, const std::string& host, const tls::GeneratedPki& pki,
                std::shared_ptr<tls::Context> tls_context) {
  auto down = std::make_unique<demo::RefusedPort>(host, 0);
  const std::uint16_t port = down->port();
  std::ostringstream toml;
  toml << "[server]\nlisten = [\"127.0.0.1:0\"]\nhostname = \"demo-relay.portrelay.test\"\n"
       << "[relay]\nmode = \"spool\"\n[metrics]\nenabled = false\n"
       << "[spool]\ndir = \"" << spool_dir << "\"\n"
       << "[[upstream]]\nname = \"provider\"\nhost = \"" << host << "\"\nport = " << port
       << "\ntls = \"implicit\"\ntls_server_name = \"localhost\"\nca_file = \"" << pki.ca_cert
       << "\"\nusername = \"" << kUser << "\"\npassword_env = \"" << kPasswordEnv << "\"\n";
  // The relay's own log lines (queued, delivery_attempt, probes every second) would
  // interleave with the walkthrough; the lines below tell the story, as in step 1.
  struct Silence {
    Silence() { log::set_enabled(false); }
    ~Silence() { log::set_enabled(true); }
  } silence;
  std::cout << "\nStep 5, the spool: the provider is down (" << host << ":" << port
            << " refuses everything) and a relay with\n  [relay] mode = \"spool\", "
            << "[spool] dir = \"" << spool_dir << "\"\ntakes a message:\n";
  DaemonThread relay(config::parse_config(toml.str(), "demo-spool.toml"));
  relay.start();
  auto [queued, queued_ms] = send(relay.listener_ports().at(0), "portrelay demo, spooled");
  std::cout << "  S: " << queued.final_reply << "\n  => acknowledged in " << queued_ms
            << " ms: the message and its directory entry are synced to disk first\n";
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  std::cout << "  2.5 s of outage later the message waits in " << spool_dir
            << "/queue (`portrelay queue list`);\n  the relay probes the provider every second "
               "meanwhile. Now the provider comes back:\n";
  down.reset();
  ProviderThread provider({demo::SinkOptions{host, port, true, tls_context, kUser, kPassword}});
  const auto back = std::chrono::steady_clock::now();
  bool delivered = false;
  while (!delivered && std::chrono::steady_clock::now() - back < std::chrono::seconds(15)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    delivered = provider.delivered(0) == 1;
  }
  const auto after =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - back)
          .count();
  if (!provider.error().empty()) std::cout << "  (provider: " << provider.error() << ")\n";
  std::cout << "  => " << (delivered ? "DELIVERED " : "NOT DELIVERED within ") << after
            << " ms after the provider came back (Postfix would wait for its next queue run, "
               "up to 300 s)\n  Spool metrics that moved:\n";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the removal is counted
  print_metrics(relay.metrics_text(), true);
  relay.stop();
  return delivered && queued.delivered;
}

}  // namespace

int demo(const DemoOptions& options) {
  std::error_code ignored;
  auto dir =
      std::filesystem::temp_directory_path() / ("portrelay-demo-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  } cleanup{dir};

  auto pki = tls::generate_test_pki(dir.string());
  ProviderPorts ports;
  std::unique_ptr<demo::BlackholePort> blackhole;
  std::unique_ptr<demo::RefusedPort> refused;
  if (!bind_blocked_ports(ports, options.port_base, blackhole, refused)) {
    std::cerr << "demo: cannot set up the simulated blocked ports on loopback\n";
    return 1;
  }
  auto tls_context = tls::Context::server({pki.good_cert, pki.good_key});
  ProviderThread provider(
      {demo::SinkOptions{ports.host, ports.implicit_tls, true, tls_context, kUser, kPassword},
       demo::SinkOptions{ports.host, ports.starttls, false, tls_context, kUser, kPassword}});
  if (!provider.error().empty()) {
    std::cerr << "demo: cannot start the simulated provider: " << provider.error() << "\n";
    return 1;
  }
  ports.implicit_tls = provider.port(0);
  ports.starttls = provider.port(1);
  std::cout << "portrelay demo: the provider's ports as a cloud VM sees them (all on loopback)\n"
            << "  " << ports.host << ":" << ports.blocked
            << "  silently dropped: SYNs are never answered (a firewall DROP)\n"
            << "  " << ports.host << ":" << ports.refused << "  refused: RST at once\n"
            << "  " << ports.host << ":" << ports.implicit_tls
            << "  implicit TLS + AUTH (certificate from a demo CA made just now)\n"
            << "  " << ports.host << ":" << ports.starttls << "  STARTTLS + AUTH\n\n";

  ::setenv(kPasswordEnv, kPassword, 1);
  std::string toml = demo_config(ports, pki.ca_cert);
  std::cout << "Relay configuration (portrelay.toml):\n" << toml << "\n";
  config::Config config = config::parse_config(toml, "demo.toml");
  std::cout << "Effective chain (portrelay check):\n" << config::describe_chain(config) << "\n";

  std::cout << "Step 1, `portrelay probe` (every endpoint checked at once, no mail sent):\n";
  log::set_enabled(false);
  auto probes = probe::run_probes(config);
  log::set_enabled(true);
  std::cout << probe::format_table(probes, config.relay.connect_timeout) << "\n";

  DaemonThread relay(config);
  relay.start();
  std::uint16_t relay_port = relay.listener_ports().at(0);
  std::cout << "Step 2, the relay listens on 127.0.0.1:" << relay_port
            << "; an application submits a message (the relay logs to stderr):\n";

  auto [first, first_ms] = send(relay_port, "portrelay demo, first message");
  for (const auto& line : first.transcript) std::cout << "  " << line << "\n";
  std::cout << "  => " << (first.delivered ? "DELIVERED" : "NOT DELIVERED") << " in " << first_ms
            << " ms: 587 got one stagger (" << config.relay.stagger.count()
            << " ms) instead of its whole connect_timeout; 25 refused at once\n\n";

  std::cout << "Step 3, a second message: 587 and 25 are cooling down, so they are not touched,\n"
               "and the pooled TLS connection to 465 is reused (RSET, no new handshake):\n";
  auto [second, second_ms] = send(relay_port, "portrelay demo, second message");
  std::cout << "  S: " << second.final_reply << "\n  => "
            << (second.delivered ? "DELIVERED" : "NOT DELIVERED") << " in " << second_ms << " ms\n";

  std::string metrics = relay.metrics_text();
  relay.stop();

  std::uint64_t received = provider.delivered(0) + provider.delivered(1);
  std::cout << "\nThe provider received " << provider.delivered(0) << " message(s) on port "
            << ports.implicit_tls << " and " << provider.delivered(1) << " on port "
            << ports.starttls
            << ".\n\nStep 4, the metrics that moved (what GET /metrics would show):\n";
  print_metrics(metrics, false);

  bool spooled = spool_step(dir.string() + "/spool", ports.host, pki, tls_context);
  bool ok = first.delivered && second.delivered && received == 2 && spooled;
  std::cout << "\n" << (ok ? "demo OK" : "demo FAILED") << "\n";
  return ok ? 0 : 1;
}

}  // namespace portrelay::cli
