#include "portrelay/app/daemon.hpp"

#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <stdexcept>

#include "portrelay/base/log.hpp"
#include "portrelay/relay/passthrough_relay.hpp"
#include "portrelay/server/users_file.hpp"
#include "portrelay/tls/context.hpp"

namespace portrelay {

Daemon::Daemon(net::Loop& loop, config::Config config) : loop_(loop), config_(std::move(config)) {
  metrics_ = std::make_unique<metrics::Metrics>(config_.chain, PORTRELAY_VERSION);
  selector_ = std::make_unique<relay::RacingSelector>(
      loop_, relay::build_endpoint_runtimes(config_), relay::timeouts_from(config_.relay),
      config_.relay.helo_name, relay::RacingOptions::from(config_.relay), *metrics_);
  server::SessionEnvironment environment;
  environment.loop = &loop_;
  environment.make_sink = [this](const std::string& session_id) {
    return std::make_unique<relay::PassthroughRelay>(loop_, *selector_, *metrics_, session_id);
  };
  environment.metrics = metrics_.get();
  environment.command_timeout = config_.server.command_timeout;
  environment.data_timeout = config_.server.data_timeout;
  if (!config_.server.tls_cert.empty())
    environment.tls_context =
        tls::Context::server({config_.server.tls_cert, config_.server.tls_key});
  if (!config_.server.users_file.empty()) {
    authenticator_ = server::load_users_file(loop_.uv(), config_.server.users_file);
    environment.authenticator = authenticator_.get();
  }
  server_ = std::make_unique<server::SubmissionServer>(config_.server, environment);
}

Daemon::~Daemon() = default;

void Daemon::start() {
  server_->start();
  if (config_.metrics.enabled) {
    std::string address = config_.metrics.listen.str();
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(address);
    } catch (const std::exception& error) {
      throw std::runtime_error("cannot serve metrics on " + address + ": " + error.what());
    }
    exposer_->RegisterCollectable(metrics_->registry());
    log::info("metrics_listening", {{"address", address}, {"path", "/metrics"}});
  }
}

std::uint16_t Daemon::metrics_port() const {
  if (!exposer_) return 0;
  auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : static_cast<std::uint16_t>(ports.front());
}

void Daemon::shutdown(config::Duration grace, std::function<void()> done) {
  log::info("shutting_down", {{"sessions", std::to_string(server_->session_count())}});
  server_->shutdown(grace, [this, done = std::move(done)]() {
    selector_->shutdown();
    done();
  });
}

DaemonThread::DaemonThread(config::Config config) : config_(std::move(config)) {}

DaemonThread::~DaemonThread() { stop(); }

void DaemonThread::start() {
  thread_.start([this](net::Loop& loop) {
    daemon_ = std::make_unique<Daemon>(loop, config_);
    try {
      daemon_->start();
    } catch (...) {
      daemon_.reset();
      throw;
    }
    ports_ = daemon_->listener_ports();
    metrics_port_ = daemon_->metrics_port();
    return net::LoopThread::Hooks{
        [this]() { daemon_->shutdown(grace_, []() {}); },
        [this]() { daemon_.reset(); },
    };
  });
}

void DaemonThread::stop(config::Duration grace) {
  grace_ = grace;
  thread_.stop();
}

std::string DaemonThread::metrics_text() {
  return daemon_ ? daemon_->metrics().serialize() : std::string();
}

}  // namespace portrelay
