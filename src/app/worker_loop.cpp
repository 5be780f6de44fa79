#include "worker_loop.hpp"

#include <exception>
#include <future>

#include "portrelay/base/log.hpp"

namespace portrelay {

WorkerLoop::WorkerLoop(std::size_t index, Build build,
                       std::shared_ptr<server::SessionCensus> census,
                       std::shared_ptr<server::AuthFailureTracker> auth_failures)
    : index_(index),
      build_(std::move(build)),
      census_(std::move(census)),
      auth_failures_(std::move(auth_failures)) {}

WorkerLoop::~WorkerLoop() { stop(); }

void WorkerLoop::start(std::shared_ptr<const config::Config> config,
                       const std::vector<std::uint16_t>& ports, Daemon::Shared shared) {
  thread_.start([this, config, ports, shared](net::Loop& loop) {
    loop_ = &loop;
    Daemon::Generation generation = build_(config, loop, shared);
    selector_ = generation.selector;
    server_ = std::make_unique<server::SubmissionServer>(
        std::shared_ptr<const config::ServerConfig>(config, &config->server),
        std::move(generation.environment));
    server_->share_census(census_, index_, auth_failures_);
    try {
      server_->start(/*reuse_port=*/true, ports);
    } catch (...) {
      server_.reset();
      selector_->shutdown();
      selector_.reset();
      throw;
    }
    mailbox_ = std::make_unique<net::LoopMailbox>(loop.uv());
    return net::LoopThread::Hooks{
        [this]() {
          // The thread is being stopped: after shutdown() nothing is left; otherwise (the
          // daemon went away without one) the sessions are closed now.
          mailbox_->close();
          if (shutting_down_) return;
          shutting_down_ = true;
          server_->shutdown(config::Duration::zero(), [this]() { selector_->shutdown(); });
        },
        [this]() {
          server_.reset();
          selector_.reset();
          mailbox_.reset();
        },
    };
  });
}

void WorkerLoop::reconfigure(std::shared_ptr<const config::Config> config, Daemon::Shared shared) {
  // Shared with the task: a task dropped by a closing mailbox breaks the promise, and the
  // wait below ends instead of hanging.
  auto applied = std::make_shared<std::promise<void>>();
  auto result = applied->get_future();
  const bool posted = mailbox_ && mailbox_->post([this, config, shared, applied]() {
    try {
      Daemon::Generation generation = build_(config, *loop_, shared);
      generation.selector->inherit_health(*selector_);
      selector_->retire();
      selector_ = generation.selector;
      server_->reconfigure(std::shared_ptr<const config::ServerConfig>(config, &config->server),
                           std::move(generation.environment));
      applied->set_value();
    } catch (...) {
      applied->set_exception(std::current_exception());
    }
  });
  applied.reset();
  if (!posted) return;  // the worker is stopping; there is nothing to reconfigure
  try {
    result.get();
  } catch (const std::future_error&) {
    // Dropped: the worker stopped before it ran; it takes no more sessions anyway.
  }
}

void WorkerLoop::shutdown(config::Duration grace, std::function<void()> done) {
  const bool posted = mailbox_ && mailbox_->post([this, grace, done]() {
    if (shutting_down_) return done();
    shutting_down_ = true;
    server_->shutdown(grace, [this, done]() {
      selector_->shutdown();
      mailbox_->close();
      done();
    });
  });
  if (!posted) done();
}

}  // namespace portrelay
