#include "portrelay/app/daemon_thread.hpp"

namespace portrelay {

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
    reload_signal_ = std::make_unique<net::Async>(loop.uv(), [this]() {
      std::lock_guard lock(reload_mutex_);
      for (auto& [task, finished] : loop_tasks_) {
        task(*daemon_);
        finished.set_value();
      }
      loop_tasks_.clear();
      if (!reload_request_) return;
      auto read = std::move(reload_request_);
      reload_request_ = nullptr;
      reload_result_.set_value(daemon_->reload(read));
    });
    return net::LoopThread::Hooks{
        [this]() {
          reload_signal_->close();
          daemon_->shutdown(grace_, []() {});
        },
        [this]() {
          reload_signal_.reset();
          daemon_.reset();
        },
    };
  });
}

bool DaemonThread::reload(std::function<config::Config()> read) {
  std::future<bool> result;
  {
    std::lock_guard lock(reload_mutex_);
    if (!thread_.running() || reload_request_) return false;
    reload_result_ = std::promise<bool>();
    result = reload_result_.get_future();
    reload_request_ = std::move(read);
  }
  reload_signal_->send();
  return result.get();
}

bool DaemonThread::run_on_loop(std::function<void(Daemon&)> task) {
  std::future<void> finished;
  {
    std::lock_guard lock(reload_mutex_);
    if (!thread_.running() || !reload_signal_) return false;
    std::promise<void> promise;
    finished = promise.get_future();
    loop_tasks_.emplace_back(std::move(task), std::move(promise));
  }
  reload_signal_->send();
  finished.get();
  return true;
}

bool DaemonThread::reload_text(const std::string& toml, const std::string& source) {
  return reload([toml, source]() { return config::parse_config(toml, source); });
}

bool DaemonThread::reload_file(const std::string& path) {
  return reload([path]() { return config::load_config_file(path); });
}

void DaemonThread::stop(config::Duration grace) {
  grace_ = grace;
  thread_.stop();
}

std::string DaemonThread::metrics_text() {
  return daemon_ ? daemon_->metrics().serialize() : std::string();
}

}  // namespace portrelay
