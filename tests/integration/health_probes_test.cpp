// Operator view of a running relay: start-up and periodic health probes (upstream_up,
// last success time, probes counted apart from message traffic), /healthz and /readyz on
// the metrics listener, and the process_* metrics. The real Daemon on loopback; HTTP is a
// plain socket GET, as a kubelet or Prometheus does it.
#include <chrono>
#include <ctime>
#include <functional>
#include <string>
#include <thread>

#include "portrelay/demo/blocked_ports.hpp"
#include "relay_harness.hpp"

namespace portrelay::test {
namespace {

using namespace std::chrono_literals;
using demo::refused_port;
using demo::RefusedPort;

// Polls `done` every 50 ms until it holds or `limit` passes.
bool eventually(std::chrono::milliseconds limit, const std::function<bool()>& done) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return done();
}

double unix_now() { return static_cast<double>(std::time(nullptr)); }

RelaySettings with_metrics(const std::string& probe_interval) {
  RelaySettings settings;
  settings.metrics = "listen = \"127.0.0.1:0\"";
  settings.probe_interval = probe_interval;
  return settings;
}

TEST(HealthProbes, StartUpProbeMakesUpstreamUpWithoutAnyMail) {
  FakeUpstream up;
  RefusedPort refused;
  RelaySettings settings = with_metrics("60s");
  settings.upstreams = {plain_upstream("up", up.port()), plain_upstream("down", refused.port())};
  // One loop: the probe's connection waits in the main loop's pool, and the message below
  // must be taken on that loop to find it (each loop has a pool of its own).
  settings.server_extra = "workers = 1";
  const double before = unix_now();
  RelayUnderTest relay(settings);
  ASSERT_TRUE(eventually(3s, [&] {
    return relay.metric("portrelay_upstream_up", {{"upstream", "up"}}) == 1 &&
           relay.metric("portrelay_upstream_probes_total",
                        {{"upstream", "down"}, {"result", "failure"}}) == 1;
  })) << relay.metrics_text();
  const double after = unix_now();
  const double stamp =
      relay.metric("portrelay_upstream_last_success_timestamp_seconds", {{"upstream", "up"}});
  EXPECT_GE(stamp, before - 1);
  EXPECT_LE(stamp, after + 1);
  EXPECT_EQ(
      relay.metric("portrelay_upstream_last_success_timestamp_seconds", {{"upstream", "down"}}), 0);
  EXPECT_EQ(relay.metric("portrelay_upstream_up", {{"upstream", "down"}}), 0);
  EXPECT_EQ(
      relay.metric("portrelay_upstream_probes_total", {{"upstream", "up"}, {"result", "success"}}),
      1);
  // Probe traffic is not message traffic: the connect_* series saw nothing.
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_attempts_total"), 0);
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_failures_total"), 0);
  EXPECT_EQ(relay.metric("portrelay_messages_total"), 0);
  EXPECT_EQ(up.transactions().size(), 0u);
  EXPECT_EQ(up.connection_count(), 1u) << "one probe, nothing else";

  // The probe's ready connection went to the pool: the first message uses it.
  auto client = relay.client();
  EXPECT_EQ(client->send_message("a@example.test", {"b@example.test"}, sample_message()).code, 250);
  EXPECT_EQ(relay.metric("portrelay_upstream_pool_reuses_total", {{"upstream", "up"}}), 1);
  EXPECT_EQ(relay.metric("portrelay_upstream_connect_attempts_total"), 0);
  EXPECT_EQ(up.connection_count(), 1u);
}

TEST(HealthProbes, EveryEndpointIsReprobedWithinOneInterval) {
  FakeUpstream first;
  FakeUpstream second;  // never preferred over `first`: fail-back probing never looked at it
  RelaySettings settings = with_metrics("1s");
  settings.upstreams = {plain_upstream("first", first.port()),
                        plain_upstream("second", second.port())};
  RelayUnderTest relay(settings);
  auto probes = [&](const char* name) {
    return relay.metric("portrelay_upstream_probes_total",
                        {{"upstream", name}, {"result", "success"}});
  };
  // Start-up probe plus one per second (jittered to 0.8..1 s): at least 3 within 2.5 s.
  ASSERT_TRUE(eventually(2500ms, [&] { return probes("first") >= 3 && probes("second") >= 3; }))
      << relay.metrics_text();
  // Bounded: not more than one per 0.8 s (start-up + 2.5 s / 0.8 s, rounded up, + slack).
  EXPECT_LE(probes("second"), 6);
  // Each refresh proved a fresh connect; the pool keeps one of them, not one per refresh.
  EXPECT_EQ(relay.metric("portrelay_upstream_pool_idle_connections", {{"upstream", "second"}}), 1);
}

TEST(HealthProbes, AnEndpointThatComesBackIsUpWithinOneInterval) {
  const std::uint16_t port = refused_port();  // nothing listens until the test says so
  RelaySettings settings = with_metrics("1s");
  settings.relay_extra = "cooldown = \"10m\"\ncooldown_max = \"10m\"\n";
  settings.upstreams = {plain_upstream("late", port)};
  RelayUnderTest relay(settings);
  ASSERT_TRUE(eventually(2s, [&] {
    return relay.metric("portrelay_upstream_probes_total", {{"result", "failure"}}) >= 1;
  }));
  EXPECT_EQ(relay.metric("portrelay_upstream_up"), 0);
  FakeUpstream back({.port = port});
  // Cooling down for ten minutes, but the refresh does not wait for that.
  EXPECT_TRUE(eventually(2500ms, [&] { return relay.metric("portrelay_upstream_up") == 1; }))
      << relay.metrics_text();
}

TEST(HealthEndpoints, HealthzAnswers200AndReadyz503UntilAnEndpointWorks) {
  const std::uint16_t first_port = refused_port();
  const std::uint16_t second_port = refused_port();
  RelaySettings settings = with_metrics("1s");
  settings.relay_extra = "cooldown = \"10m\"\ncooldown_max = \"10m\"\n";
  settings.upstreams = {plain_upstream("a", first_port), plain_upstream("b", second_port)};
  RelayUnderTest relay(settings);
  const std::uint16_t port = relay.daemon().metrics_port();
  ASSERT_NE(port, 0);

  HttpReply live = http_get(port, "/healthz");
  EXPECT_EQ(live.status, 200) << live.body;
  EXPECT_EQ(live.body, "ok\n");

  HttpReply ready;
  ASSERT_TRUE(eventually(3s,
                         [&] {
                           ready = http_get(port, "/readyz");
                           return ready.status == 503 &&
                                  ready.body.find("cooling down") != std::string::npos;
                         }))
      << ready.status << " " << ready.body;
  EXPECT_EQ(ready.body, "no upstream endpoint is usable: all 2 are cooling down after failures\n");

  FakeUpstream back({.port = second_port});
  EXPECT_TRUE(eventually(3500ms,
                         [&] {
                           ready = http_get(port, "/readyz");
                           return ready.status == 200;
                         }))
      << ready.status << " " << ready.body;
  EXPECT_EQ(ready.body, "ready\n");
  // /metrics is still the Exposer's.
  HttpReply metrics = http_get(port, "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metric_value(metrics.body, "portrelay_upstream_up", {{"upstream", "b"}}), 1);
}

TEST(HealthEndpoints, HealthzIs503WhileTheEventLoopIsStuck) {
  FakeUpstream up;
  RelaySettings settings = with_metrics("60s");
  settings.upstreams = {plain_upstream("up", up.port())};
  RelayUnderTest relay(settings);
  const std::uint16_t port = relay.daemon().metrics_port();
  ASSERT_EQ(http_get(port, "/healthz").status, 200);
  // A callback that never returns, as a deadlock or a runaway loop would: the HTTP threads
  // still answer, and must say the loop does not.
  std::thread stuck(
      [&] { relay.daemon().run_on_loop([](Daemon&) { std::this_thread::sleep_for(7s); }); });
  HttpReply live;
  EXPECT_TRUE(eventually(6500ms,
                         [&] {
                           live = http_get(port, "/healthz");
                           return live.status == 503;
                         }))
      << live.status << " " << live.body;
  EXPECT_NE(live.body.find("event loop has not answered"), std::string::npos) << live.body;
  EXPECT_EQ(http_get(port, "/readyz").status, 503);
  stuck.join();
  EXPECT_TRUE(eventually(2s, [&] { return http_get(port, "/healthz").status == 200; }));
}

TEST(HealthEndpoints, ReadyzIs503AfterShutdownBegins) {
  FakeUpstream up;
  RelaySettings settings = with_metrics("0s");
  settings.upstreams = {plain_upstream("up", up.port())};
  RelayUnderTest relay(settings);
  const std::uint16_t port = relay.daemon().metrics_port();
  HttpReply ready = http_get(port, "/readyz");
  EXPECT_EQ(ready.status, 200) << "probing off: an unknown endpoint is usable; " << ready.body;
  auto client = relay.client();  // an idle session keeps the daemon draining
  ASSERT_TRUE(relay.daemon().run_on_loop([](Daemon& daemon) { daemon.shutdown(5s, [] {}); }));
  ready = http_get(port, "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(ready.body, "shutting down\n");
}

TEST(ProcessMetrics, StandardProcessSeriesAreServed) {
  FakeUpstream up;
  RelaySettings settings = with_metrics("0s");
  settings.upstreams = {plain_upstream("up", up.port())};
  RelayUnderTest relay(settings);
  HttpReply metrics = http_get(relay.daemon().metrics_port(), "/metrics");
  ASSERT_EQ(metrics.status, 200);
  const std::string& text = metrics.body;
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                           "process_start_time_seconds"})
    EXPECT_TRUE(metric_exists(text, name)) << name;
  EXPECT_NE(text.find("# TYPE process_cpu_seconds_total counter"), std::string::npos);
  EXPECT_GT(metric_value(text, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GE(metric_value(text, "process_open_fds"), 5);  // listeners, loop, metrics socket...
  EXPECT_GE(metric_value(text, "process_max_fds"), metric_value(text, "process_open_fds"));
  const double started = metric_value(text, "process_start_time_seconds");
  EXPECT_LE(started, unix_now() + 1);
  EXPECT_GE(started, unix_now() - 3600) << "the test binary started within the hour";
  EXPECT_GE(metric_value(text, "process_cpu_seconds_total"), 0);
  EXPECT_TRUE(metric_exists(relay.metrics_text(), "process_open_fds")) << "serialize() too";
}

}  // namespace
}  // namespace portrelay::test
