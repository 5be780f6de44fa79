#include "portrelay/spool/committer.hpp"

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace portrelay::spool {
namespace {

constexpr std::size_t kCopyChunk = 64 * 1024;

Error os_error(const std::string& what) { return Error{what + ": " + std::strerror(errno)}; }

// Runs `call`, returns its duration in seconds (for the sync histogram).
template <typename Call>
double timed(Call call) {
  auto start = std::chrono::steady_clock::now();
  call();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Committer::Committer(net::Loop& loop, SpoolDirectory& directory, SyncObserver on_sync)
    : loop_(loop), directory_(directory), on_sync_(std::move(on_sync)) {
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
  Job job;
  job.kind = Kind::Store;
  job.id = std::move(id);
  job.text = std::move(header);
  job.body = std::move(body);
  job.done = std::move(done);
  enqueue(std::move(job));
}

void Committer::write_state(std::string id, std::string text, bool failed_area, Done done) {
  Job job;
  job.kind = Kind::State;
  job.id = std::move(id);
  job.text = std::move(text);
  job.failed_area = failed_area;
  job.done = std::move(done);
  enqueue(std::move(job));
}

void Committer::remove(std::string id, bool failed_area, Done done) {
  Job job;
  job.kind = Kind::Remove;
  job.id = std::move(id);
  job.failed_area = failed_area;
  job.done = std::move(done);
  enqueue(std::move(job));
}

void Committer::move_to_failed(std::string id, Done done) {
  Job job;
  job.kind = Kind::MoveToFailed;
  job.id = std::move(id);
  job.done = std::move(done);
  enqueue(std::move(job));
}

void Committer::enqueue(Job job) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) {
      job.result = Error{"the spool is shutting down"};
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

// `tmp_dir`: tmp/ opened again for this round, through the spool's root descriptor and
// never through a symbolic link: if it was removed and made again while the daemon ran (an
// operator's clean-up, a disk repaired), writes go on.
void Committer::write_file(Job& job, int tmp_dir) {
  job.tmp = job.kind == Kind::Store ? job.id : job.id + ".state." + std::to_string(++tmp_sequence_);
  auto created = open_spool_file(tmp_dir, job.tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (!created) {
    job.result =
        Error{"cannot create " + directory_.tmp_path(job.tmp) + ": " + created.error().message};
    job.tmp.clear();
    return;
  }
  const int fd = *created;
  Result<bool> written = true;
  // A root daemon on a spool another user owns: the file is that user's, as if it had
  // written it (fchown on the descriptor of a file made here, O_EXCL).
  if (!directory_.give_to_owner(fd)) written = os_error("fchown to the spool's owner");
  if (written) written = write_all(fd, job.text);
  if (written && job.kind == Kind::Store) {
    std::string chunk;
    for (std::uint64_t offset = 0; written && offset < job.body->size(); offset += chunk.size()) {
      if (!job.body->read(offset, kCopyChunk, chunk) || chunk.empty()) {
        written = Error{"cannot read the message body back"};
        break;
      }
      written = write_all(fd, chunk);
    }
    if (written) written = write_all(fd, kEndMarker);
  }
  if (::close(fd) != 0 && written) written = os_error("close");
  if (!written) {
    job.result =
        Error{"cannot write " + directory_.tmp_path(job.tmp) + ": " + written.error().message};
    ::unlinkat(tmp_dir, job.tmp.c_str(), 0);
    job.tmp.clear();
  }
}

void Committer::round(std::vector<Job>& jobs, std::vector<double>& sync_seconds) {
  // 1. Content into tmp/, then one sync for all of it.
  const int tmp_dir = open_spool_subdirectory(directory_.root_fd(), "tmp");
  const int tmp_errno = errno;
  Error no_tmp;
  if (tmp_dir < 0)
    no_tmp.message = "cannot open " + directory_.root() + "/tmp: " +
                     (tmp_errno == ELOOP || tmp_errno == ENOTDIR ? "not a directory (refused)"
                                                                 : std::strerror(tmp_errno));
  bool wrote = false;
  for (auto& job : jobs) {
    if (job.kind != Kind::Store && job.kind != Kind::State) continue;
    if (tmp_dir < 0) {
      job.result = no_tmp;
      job.body.reset();
      continue;
    }
    write_file(job, tmp_dir);
    wrote = wrote || job.result.ok();
    job.body.reset();  // the session's memory goes back as soon as it is on disk
  }
  if (wrote) {
    int status = 0;
    sync_seconds.push_back(timed([&]() { status = ::syncfs(tmp_dir); }));
    if (status != 0) {
      Error error = os_error("cannot sync the spool");
      for (auto& job : jobs)
        if (!job.tmp.empty()) {
          ::unlinkat(tmp_dir, job.tmp.c_str(), 0);
          job.tmp.clear();
          job.result = error;
        }
    }
  }

  // 2. Names: into queue/ (or failed/), removals, moves.
  bool queue_dirty = false, failed_dirty = false;
  const int queue = directory_.queue_fd(), failed = directory_.failed_fd();
  for (auto& job : jobs) {
    if (!job.result) continue;
    const int dir = job.failed_area ? failed : queue;
    const std::string state = job.id + ".state";
    switch (job.kind) {
      case Kind::Store:
        // Never over an existing file: a queue id is never reused, even after a clock step.
        if (::renameat2(tmp_dir, job.tmp.c_str(), queue, job.id.c_str(), RENAME_NOREPLACE) != 0) {
          job.result = os_error("cannot move " + job.id + " into the queue");
          ::unlinkat(tmp_dir, job.tmp.c_str(), 0);
        }
        queue_dirty = true;
        break;
      case Kind::State:
        if (::renameat(tmp_dir, job.tmp.c_str(), dir, state.c_str()) != 0) {
          job.result = os_error("cannot replace the state of " + job.id);
          ::unlinkat(tmp_dir, job.tmp.c_str(), 0);
        }
        (job.failed_area ? failed_dirty : queue_dirty) = true;
        break;
      case Kind::Remove:
        // The message first: a state file left alone is cleaned up at start-up, a
        // message without its state would be delivered again from scratch.
        if (::unlinkat(dir, job.id.c_str(), 0) != 0 && errno != ENOENT)
          job.result = os_error("cannot remove " + job.id);
        ::unlinkat(dir, state.c_str(), 0);
        (job.failed_area ? failed_dirty : queue_dirty) = true;
        break;
      case Kind::MoveToFailed:
        if (::renameat(queue, job.id.c_str(), failed, job.id.c_str()) != 0) {
          job.result = os_error("cannot move " + job.id + " to failed/");
        } else {
          ::renameat(queue, state.c_str(), failed, state.c_str());
          // The time it failed, for failed_lifetime.
          ::utimensat(failed, job.id.c_str(), nullptr, 0);
        }
        queue_dirty = failed_dirty = true;
        break;
    }
  }

  // 3. One sync per directory whose entries changed. A job whose change may not survive a
  // crash is not reported done: a new message is taken back (never acknowledged), the
  // others report the error (their caller keeps the message as it was, or retries).
  for (auto [dirty, fd] : {std::pair{queue_dirty, queue}, std::pair{failed_dirty, failed}}) {
    if (!dirty) continue;
    int status = 0;
    sync_seconds.push_back(timed([&]() { status = ::fsync(fd); }));
    if (status == 0) continue;
    Error error = os_error("cannot sync the spool directory");
    for (auto& job : jobs) {
      if (!job.result) continue;
      const bool touched =
          job.kind == Kind::MoveToFailed || (fd == queue ? !job.failed_area : job.failed_area);
      if (!touched) continue;
      if (job.kind == Kind::Store) ::unlinkat(queue, job.id.c_str(), 0);
      job.result = error;
    }
  }
  if (tmp_dir >= 0) ::close(tmp_dir);
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
    if (job.done) job.done(std::move(job.result));
}

}  // namespace portrelay::spool
