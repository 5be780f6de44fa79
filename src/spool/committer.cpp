#include "portrelay/spool/committer.hpp"

#include <utility>

namespace portrelay::spool {

Committer::Committer(net::Loop& loop, SpoolDirectory& directory, SyncObserver on_sync)
    : loop_(loop), writer_(directory), on_sync_(std::move(on_sync)) {
  wake_loop_ = std::make_unique<net::Async>(loop_.uv(), [this]() { deliver_completions(); });
  thread_ = std::thread([this]() { run(); });
}

Committer::~Committer() { stop(); }

void Committer::stop() {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    stopping_ = true;
  }
  work_ready_.notify_one();
  if (thread_.joinable()) thread_.join();
  // Completions may queue more work (a bounce stored -> remove the original): finish it
  // here, on the calling thread, until nothing is left.
  for (;;) {
    deliver_completions();
    std::vector<Job> jobs;
    std::vector<double> sync_seconds;
    {
      std::lock_guard lock(mutex_);
      if (queued_.empty()) {
        closed_ = true;
        break;
      }
      jobs.swap(queued_);
    }
    round(jobs, sync_seconds);
    std::lock_guard lock(mutex_);
    for (auto& job : jobs) finished_.push_back(std::move(job));
    finished_syncs_.insert(finished_syncs_.end(), sync_seconds.begin(), sync_seconds.end());
  }
  if (wake_loop_) wake_loop_->close();
}

void Committer::store(std::string id, std::string header, std::unique_ptr<relay::MessageBody> body,
                      Done done) {
  apply(SpoolChange::store(std::move(id), std::move(header), std::move(body)), std::move(done));
}

void Committer::write_state(std::string id, std::string text, bool failed_area, Done done) {
  apply(SpoolChange::state(std::move(id), std::move(text), failed_area), std::move(done));
}

void Committer::remove(std::string id, bool failed_area, Done done) {
  apply(SpoolChange::remove(std::move(id), failed_area), std::move(done));
}

void Committer::move_to_failed(std::string id, Done done) {
  apply(SpoolChange::move_to_failed(std::move(id)), std::move(done));
}

void Committer::apply(SpoolChange change, Done done) {
  Job job{std::move(change), std::move(done)};
  {
    std::lock_guard lock(mutex_);
    if (closed_) {
      job.change.result = Error{"the spool is shutting down", ErrorCode::ShuttingDown};
      job.change.body.reset();
      finished_.push_back(std::move(job));
      // Still from a later turn of the loop, as promised.
      loop_.post([this]() { deliver_completions(); });
      return;
    }
    queued_.push_back(std::move(job));
  }
  work_ready_.notify_one();
}

void Committer::run() {
  std::vector<Job> jobs;
  std::vector<double> sync_seconds;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      work_ready_.wait(lock, [this]() { return stopping_ || !queued_.empty(); });
      if (queued_.empty()) return;  // stopping and drained
      jobs.swap(queued_);
    }
    round(jobs, sync_seconds);
    {
      std::lock_guard lock(mutex_);
      for (auto& job : jobs) finished_.push_back(std::move(job));
      finished_syncs_.insert(finished_syncs_.end(), sync_seconds.begin(), sync_seconds.end());
    }
    jobs.clear();
    sync_seconds.clear();
    wake_loop_->send();
  }
}

void Committer::round(std::vector<Job>& jobs, std::vector<double>& sync_seconds) {
  std::vector<SpoolChange> changes;
  changes.reserve(jobs.size());
  for (auto& job : jobs) changes.push_back(std::move(job.change));
  auto seconds = writer_.apply(changes);
  for (std::size_t i = 0; i < jobs.size(); ++i) jobs[i].change = std::move(changes[i]);
  sync_seconds.insert(sync_seconds.end(), seconds.begin(), seconds.end());
}

void Committer::deliver_completions() {
  std::vector<Job> finished;
  std::vector<double> syncs;
  {
    std::lock_guard lock(mutex_);
    finished.swap(finished_);
    syncs.swap(finished_syncs_);
  }
  for (double seconds : syncs) {
    ++syncs_;
    if (on_sync_) on_sync_(seconds);
  }
  for (auto& job : finished)
    if (job.done) job.done(std::move(job.change.result));
}

}  // namespace portrelay::spool
