#include "portrelay/daemon.hpp"

#include <prometheus/exposer.h>

#include <csignal>
#include <future>
#include <stdexcept>

#include "portrelay/log.hpp"
#include "portrelay/server/users_file.hpp"
#include "portrelay/tls/context.hpp"

namespace portrelay {

Daemon::Daemon(uv_loop_t* loop, config::Config config) : loop_(loop), config_(std::move(config)) {
  metrics_ = std::make_unique<metrics::Metrics>(config_.chain, PORTRELAY_VERSION);
  selector_ = std::make_unique<relay::RacingSelector>(
      loop_, relay::build_endpoint_runtimes(config_), relay::timeouts_from(config_.relay),
      config_.relay.helo_name, relay::RacingOptions::from(config_.relay), *metrics_);
  server::SessionEnvironment environment;
  environment.loop = loop_;
  environment.selector = selector_.get();
  environment.metrics = metrics_.get();
  environment.command_timeout = config_.server.command_timeout;
  environment.data_timeout = config_.server.data_timeout;
  if (!config_.server.tls_cert.empty())
    environment.tls_context =
        tls::Context::server({config_.server.tls_cert, config_.server.tls_key});
  if (!config_.server.users_file.empty()) {
    authenticator_ = server::load_users_file(loop_, config_.server.users_file);
    environment.authenticator = authenticator_.get();
  }
  server_ = std::make_unique<server::SubmissionServer>(config_.server, environment);
}

Daemon::~Daemon() = default;

void Daemon::start() {
  // A peer that resets while a reply is queued makes write() raise SIGPIPE, which would
  // end the whole process (the demo and tests run the daemon without `portrelay run`).
  std::signal(SIGPIPE, SIG_IGN);
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
  std::promise<void> ready;
  auto started = ready.get_future();
  thread_ = std::thread([this, &ready]() {
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_async_t async;
    try {
      daemon_ = std::make_unique<Daemon>(&loop, config_);
      daemon_->start();
    } catch (...) {
      daemon_.reset();
      uv_run(&loop, UV_RUN_NOWAIT);  // let closed handles finish
      uv_loop_close(&loop);
      ready.set_exception(std::current_exception());
      return;
    }
    async.data = this;
    uv_async_init(&loop, &async, [](uv_async_t* handle) {
      auto* self = static_cast<DaemonThread*>(handle->data);
      self->daemon_->shutdown(
          self->grace_, [handle]() { uv_close(reinterpret_cast<uv_handle_t*>(handle), nullptr); });
    });
    stop_signal_ = &async;
    ports_ = daemon_->listener_ports();
    metrics_port_ = daemon_->metrics_port();
    ready.set_value();
    uv_run(&loop, UV_RUN_DEFAULT);
    daemon_.reset();
    uv_run(&loop, UV_RUN_DEFAULT);  // close callbacks of what the daemon owned
    uv_loop_close(&loop);
  });
  try {
    started.get();
  } catch (...) {
    thread_.join();
    throw;
  }
  running_ = true;
}

void DaemonThread::stop(config::Duration grace) {
  if (!running_) return;
  running_ = false;
  grace_ = grace;
  uv_async_send(stop_signal_);
  thread_.join();
}

std::string DaemonThread::metrics_text() {
  return daemon_ ? daemon_->metrics().serialize() : std::string();
}

}  // namespace portrelay
