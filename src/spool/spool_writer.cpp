#include "portrelay/spool/spool_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <utility>

namespace portrelay::spool {
namespace {

constexpr std::size_t kCopyChunk = 64 * 1024;

// "what: why", keeping the code of the failure underneath.
Error because(const std::string& what, const Error& error) {
  return Error{what + ": " + error.message, error.code};
}

// Runs `call`, returns its duration in seconds (for the sync histogram).
template <typename Call>
double timed(Call call) {
  auto start = std::chrono::steady_clock::now();
  call();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

SpoolChange SpoolChange::store(std::string id, std::string header,
                               std::unique_ptr<relay::MessageBody> body) {
  SpoolChange change;
  change.kind = Kind::Store;
  change.id = std::move(id);
  change.text = std::move(header);
  change.body = std::move(body);
  return change;
}

SpoolChange SpoolChange::state(std::string id, std::string text, bool failed_area) {
  SpoolChange change;
  change.kind = Kind::State;
  change.id = std::move(id);
  change.text = std::move(text);
  change.failed_area = failed_area;
  return change;
}

SpoolChange SpoolChange::remove(std::string id, bool failed_area, bool durable) {
  SpoolChange change;
  change.kind = Kind::Remove;
  change.id = std::move(id);
  change.failed_area = failed_area;
  change.durable = durable;
  return change;
}

SpoolChange SpoolChange::move_to_failed(std::string id) {
  SpoolChange change;
  change.kind = Kind::MoveToFailed;
  change.id = std::move(id);
  return change;
}

SpoolWriter::SpoolWriter(SpoolDirectory& directory)
    : directory_(directory),
      env_(directory.env()),
      tmp_prefix_("." + std::to_string(::getpid()) + ".") {}

Status SpoolWriter::write_content(SpoolChange& change, int fd) {
  // A root daemon on a spool another user owns: the file is that user's, as if it had
  // written it (fchown on the descriptor of a file made here, O_EXCL).
  if (!directory_.give_to_owner(fd)) return os_error("fchown to the spool's owner", errno);
  if (auto written = write_all(env_, fd, change.text); !written) return written;
  if (change.kind != SpoolChange::Kind::Store) return Status::ok_status();
  std::string chunk;
  for (std::uint64_t offset = 0; offset < change.body->size(); offset += chunk.size()) {
    if (!change.body->read(offset, kCopyChunk, chunk) || chunk.empty())
      return Error{"cannot read the message body back", ErrorCode::IoError};
    if (auto written = write_all(env_, fd, chunk); !written) return written;
  }
  return write_all(env_, fd, kEndMarker);
}

// `tmp_dir`: tmp/ opened again for this round, through the spool's root descriptor and
// never through a symbolic link: if it was removed and made again while the daemon ran (an
// operator's clean-up, a disk repaired), writes go on.
SpoolWriter::TmpFile SpoolWriter::write_file(SpoolChange& change, int tmp_dir) {
  // A message's id is never reused; a state's name is unique to this process and round.
  std::string tmp = change.kind == SpoolChange::Kind::Store
                        ? change.id
                        : change.id + ".state" + tmp_prefix_ + std::to_string(++tmp_sequence_);
  auto created = open_spool_file(env_, tmp_dir, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (!created && created.error().code == ErrorCode::AlreadyExists) {
    // Left by a run that was interrupted (only a lock holder writes in tmp/): it never
    // became anything, and it goes (never followed; the new one is made here, O_EXCL).
    (void)env_.remove_at(tmp_dir, tmp);
    created = open_spool_file(env_, tmp_dir, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
  }
  if (!created) {
    change.result = because("cannot create " + directory_.tmp_path(tmp), created.error());
    return {};
  }
  const int fd = *created;
  if (Status written = write_content(change, fd); !written) {
    change.result = because("cannot write " + directory_.tmp_path(tmp), written.error());
    (void)env_.close(fd);
    (void)env_.remove_at(tmp_dir, tmp);
    return {};
  }
  env_.start_writeback(fd);  // the device starts on it while the next file is written
  return {std::move(tmp), fd};
}

// The content of every file written this round, each file by its own descriptor: an
// acknowledgement waits for its own data, not for whatever else is dirty on the file system
// (a database, a backup, a log rotation: syncfs() waited for all of it). Descriptors are
// closed here; a change whose sync or close fails loses its file and gets the error.
void SpoolWriter::sync_files(std::vector<SpoolChange>& changes, std::vector<TmpFile>& tmp,
                             int tmp_dir) {
  for (std::size_t i = 0; i < changes.size(); ++i) {
    TmpFile& file = tmp[i];
    if (file.fd < 0) continue;
    Status synced = env_.sync_data(file.fd);
    if (auto closed = env_.close(file.fd); !closed && synced.ok()) synced = closed;
    file.fd = -1;
    if (synced) continue;
    changes[i].result = because("cannot sync " + directory_.tmp_path(file.name), synced.error());
    (void)env_.remove_at(tmp_dir, file.name);
    file.name.clear();
  }
}

std::vector<double> SpoolWriter::apply(std::vector<SpoolChange>& changes) {
  using Kind = SpoolChange::Kind;
  std::vector<double> sync_seconds;
  std::vector<TmpFile> tmp(changes.size());  // each change's file in tmp/, if any

  // 1. Content into tmp/, then each new file's data synced.
  auto tmp_dir = open_spool_subdirectory(env_, directory_.root_fd(), "tmp");
  Error no_tmp;
  if (!tmp_dir)
    no_tmp = Error{"cannot open " + directory_.root() + "/tmp: " +
                       (tmp_dir.error().code == ErrorCode::Refused ? "not a directory (refused)"
                                                                   : tmp_dir.error().message),
                   tmp_dir.error().code};
  bool wrote = false;
  for (std::size_t i = 0; i < changes.size(); ++i) {
    SpoolChange& change = changes[i];
    change.result = Status::ok_status();
    if (change.kind != Kind::Store && change.kind != Kind::State) continue;
    if (!tmp_dir)
      change.result = no_tmp;
    else
      tmp[i] = write_file(change, *tmp_dir);
    wrote = wrote || change.result.ok();
    change.body.reset();  // the session's memory goes back as soon as it is on disk
  }
  if (wrote) sync_seconds.push_back(timed([&]() { sync_files(changes, tmp, *tmp_dir); }));

  // 2. Names: into queue/ (or failed/), removals, moves.
  bool queue_dirty = false, failed_dirty = false;
  const int queue = directory_.queue_fd(), failed = directory_.failed_fd();
  for (std::size_t i = 0; i < changes.size(); ++i) {
    SpoolChange& change = changes[i];
    if (!change.result) continue;
    const int dir = change.failed_area ? failed : queue;
    const std::string state = change.id + ".state";
    switch (change.kind) {
      case Kind::Store:
        // Never over an existing file: a queue id is never reused, even after a clock step.
        if (auto moved = env_.rename_at(*tmp_dir, tmp[i].name, queue, change.id, false); !moved) {
          change.result = because("cannot move " + change.id + " into the queue", moved.error());
          (void)env_.remove_at(*tmp_dir, tmp[i].name);
        }
        queue_dirty = true;
        break;
      case Kind::State:
        if (auto moved = env_.rename_at(*tmp_dir, tmp[i].name, dir, state, true); !moved) {
          change.result = because("cannot replace the state of " + change.id, moved.error());
          (void)env_.remove_at(*tmp_dir, tmp[i].name);
        }
        (change.failed_area ? failed_dirty : queue_dirty) = true;
        break;
      case Kind::Remove:
        // The message first: a state file left alone is cleaned up at start-up, a
        // message without its state would be delivered again from scratch.
        if (auto removed = env_.remove_at(dir, change.id);
            !removed && removed.code() != ErrorCode::NotFound)
          change.result = because("cannot remove " + change.id, removed.error());
        (void)env_.remove_at(dir, state);
        if (change.durable) (change.failed_area ? failed_dirty : queue_dirty) = true;
        break;
      case Kind::MoveToFailed:
        if (auto moved = env_.rename_at(queue, change.id, failed, change.id, true); !moved) {
          change.result = because("cannot move " + change.id + " to failed/", moved.error());
        } else {
          (void)env_.rename_at(queue, state, failed, state, true);
          // The time it failed, for failed_lifetime.
          ::utimensat(failed, change.id.c_str(), nullptr, 0);
        }
        queue_dirty = failed_dirty = true;
        break;
    }
  }

  // 3. One sync per directory whose entries changed. A change that may not survive a
  // crash is not reported done: a new message is taken back (never acknowledged), the
  // others report the error (their caller keeps the message as it was, or retries).
  for (auto [dirty, fd] : {std::pair{queue_dirty, queue}, std::pair{failed_dirty, failed}}) {
    if (!dirty) continue;
    Status synced;
    sync_seconds.push_back(timed([&]() { synced = env_.sync(fd); }));
    if (synced) continue;
    const Error error = because("cannot sync the spool directory", synced.error());
    for (auto& change : changes) {
      if (!change.result) continue;
      const bool touched = change.kind == Kind::MoveToFailed ||
                           (fd == queue ? !change.failed_area : change.failed_area);
      if (!touched) continue;
      if (change.kind == Kind::Store) (void)env_.remove_at(queue, change.id);
      change.result = error;
    }
  }
  if (tmp_dir) (void)env_.close(*tmp_dir);
  return sync_seconds;
}

}  // namespace portrelay::spool
