// `portrelay queue list|show|retry|delete|bounce` and `mailq`.
//
// Listing reads the spool files and works with or without a daemon (files enter queue/
// complete and states are replaced by rename, so a reader never sees half of one).
// Changes go through the running daemon's control socket, so its in-memory queue stays
// the truth; with no daemon (the spool lock is free) they are made on the files directly,
// under the lock, and the next start picks them up.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>

#include "portrelay/cli/commands.hpp"
#include "portrelay/cli/control_client.hpp"
#include "portrelay/cli/spool_owner.hpp"
#include "portrelay/config/config.hpp"
#include "portrelay/spool/control_protocol.hpp"
#include "portrelay/spool/delivery_plan.hpp"
#include "portrelay/spool/maildrop.hpp"
#include "portrelay/spool/spool_directory.hpp"
#include "portrelay/spool/spool_writer.hpp"

namespace portrelay::cli {
namespace {

// Exit statuses are sysexits.h's, except for a request that was refused (a bad
// configuration, an unknown id, a change the daemon or the files refused): 1, as README and
// portrelay(8) document it; sysexits.h has no name for that.
constexpr int kExitRefused = EXIT_FAILURE;

std::string age(std::int64_t since_ms) {
  std::int64_t seconds = std::max<std::int64_t>(0, (spool::unix_ms_now() - since_ms) / 1000);
  char text[32];
  if (seconds < 120)
    std::snprintf(text, sizeof text, "%llds", static_cast<long long>(seconds));
  else if (seconds < 7200)
    std::snprintf(text, sizeof text, "%lldm", static_cast<long long>(seconds / 60));
  else if (seconds < 172800)
    std::snprintf(text, sizeof text, "%lldh", static_cast<long long>(seconds / 3600));
  else
    std::snprintf(text, sizeof text, "%lldd", static_cast<long long>(seconds / 86400));
  return text;
}

std::string when(std::int64_t unix_ms) {
  if (unix_ms == 0) return "now";
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&seconds));
  return text;
}

std::string sender_text(const std::string& sender) { return sender.empty() ? "<>" : sender; }

nlohmann::json to_json(const spool::StoredMessage& message) {
  const auto& envelope = message.layout.envelope;
  nlohmann::json recipients = nlohmann::json::array();
  for (std::size_t i = 0; i < envelope.recipients.size(); ++i) {
    const auto& state = message.state.recipients.at(i);
    recipients.push_back({{"address", envelope.recipients[i]},
                          {"state", spool::to_string(state.status)},
                          {"reply", state.reply}});
  }
  return {{"id", envelope.id},
          {"area", message.failed_area ? "failed" : "queue"},
          {"arrival", when(envelope.arrival_ms)},
          {"age_seconds", (spool::unix_ms_now() - envelope.arrival_ms) / 1000},
          {"size", message.layout.body_size},
          {"sender", envelope.sender},
          {"recipients", recipients},
          {"attempts", message.state.attempts},
          {"last_error", message.state.last_error},
          {"next_attempt", message.failed_area ? "never" : when(message.state.next_attempt_ms)}};
}

// A message `sendmail` left in the maildrop while no daemon ran; queued when one starts.
struct Dropped {
  std::string name;  // starts with the drop's time in ms
  unsigned uid = 0;  // who dropped it
  std::uint64_t size = 0;
  std::optional<spool::DroppedMessage> message;  // nullopt: the daemon will refuse it
  std::string problem;
};

std::vector<Dropped> read_maildrop(const config::Config& config) {
  std::vector<Dropped> dropped;
  std::unique_ptr<spool::Maildrop> maildrop;
  try {
    maildrop = std::make_unique<spool::Maildrop>(config.spool.dir, /*owner=*/false);
  } catch (const std::exception&) {
    return dropped;  // none yet (the daemon makes it at its first start)
  }
  const spool::MaildropLimits limits{config.server.max_message_size, config.server.max_recipients};
  for (const auto& name : maildrop->waiting(10000)) {
    Dropped entry{name};
    auto file = maildrop->read(name, limits.max_content + (1 << 20));
    if (!file) {
      entry.problem = file.error().message;
    } else {
      entry.uid = file->uid;
      entry.size = file->data.size();
      auto parsed = spool::parse_dropped(file->data, limits);
      if (parsed)
        entry.message = std::move(*parsed);
      else
        entry.problem = parsed.error().message;
    }
    dropped.push_back(std::move(entry));
  }
  return dropped;
}

std::int64_t dropped_at_ms(const std::string& name) {
  std::int64_t ms = 0;
  for (char c : name) {
    if (c < '0' || c > '9') break;
    ms = ms * 10 + (c - '0');
  }
  return ms;
}

nlohmann::json to_json(const Dropped& dropped) {
  nlohmann::json recipients = nlohmann::json::array();
  if (dropped.message)
    for (const auto& address : dropped.message->recipients)
      recipients.push_back({{"address", address}, {"state", "dropped"}, {"reply", ""}});
  return {{"id", dropped.name},
          {"area", "maildrop"},
          {"arrival", when(dropped_at_ms(dropped.name))},
          {"size", dropped.message ? dropped.message->content.size() : dropped.size},
          {"sender", dropped.message ? dropped.message->sender : ""},
          {"recipients", recipients},
          {"uid", dropped.uid},
          {"problem", dropped.problem}};
}

void print_table(const spool::RecoveryReport& report, const std::vector<Dropped>& dropped) {
  std::size_t count = 0;
  std::uint64_t bytes = 0;
  std::printf("%-18s %6s %9s %8s  %s\n", "Queue ID", "Age", "Size", "Attempts",
              "Sender / Recipients");
  for (const auto* list : {&report.messages, &report.failed}) {
    for (const auto& message : *list) {
      const auto& envelope = message.layout.envelope;
      ++count;
      bytes += message.layout.body_size;
      std::printf("%-18s %6s %9llu %8u  %s%s\n", envelope.id.c_str(),
                  age(envelope.arrival_ms).c_str(),
                  static_cast<unsigned long long>(message.layout.body_size), message.state.attempts,
                  sender_text(envelope.sender).c_str(), message.failed_area ? "  (failed)" : "");
      if (!message.state.last_error.empty())
        std::printf("%37s(%s)\n", "", message.state.last_error.c_str());
      for (std::size_t i = 0; i < envelope.recipients.size(); ++i)
        std::printf("%37s%s  [%s]\n", "", envelope.recipients[i].c_str(),
                    spool::to_string(message.state.recipients.at(i).status));
      if (!message.failed_area)
        std::printf("%37snext attempt: %s\n", "", when(message.state.next_attempt_ms).c_str());
    }
  }
  for (const auto& entry : dropped) {
    ++count;
    const std::uint64_t size = entry.message ? entry.message->content.size() : entry.size;
    bytes += size;
    std::printf(
        "%-18.18s %6s %9llu %8s  %s  (in the maildrop, from uid %u: queued when the "
        "daemon runs)\n",
        entry.name.c_str(), age(dropped_at_ms(entry.name)).c_str(),
        static_cast<unsigned long long>(size), "-",
        entry.message ? sender_text(entry.message->sender).c_str() : "?", entry.uid);
    if (!entry.problem.empty())
      std::printf("%37s(will be refused: %s)\n", "", entry.problem.c_str());
    if (entry.message)
      for (const auto& recipient : entry.message->recipients)
        std::printf("%37s%s  [dropped]\n", "", recipient.c_str());
  }
  const std::size_t skipped = report.unreadable.size() + report.corrupt.size();
  if (count == 0 && skipped == 0)
    std::printf("Mail queue is empty\n");
  else if (count == 0)
    std::printf("-- no readable message; %zu file(s) skipped (see the warnings)\n", skipped);
  else
    std::printf("-- %llu KiB in %zu message(s)\n", static_cast<unsigned long long>(bytes / 1024),
                count);
}

// The same changes on the files, with no daemon running (the caller holds the lock),
// through the spool's one writer (SpoolWriter, as the daemon's Committer), and the same
// decisions the daemon makes (bounce_pending). The next start carries them out.
std::string change_offline(spool::SpoolDirectory& directory, const std::string& verb,
                           const std::string& id) {
  spool::SpoolWriter writer(directory);
  if (verb == "retry") {
    // Each message's own id: with "retry all", `id` is "all", not a message.
    std::vector<spool::SpoolChange> changes;
    for (const auto& message : directory.scan().messages) {
      if (id != "all" && message.layout.envelope.id != id) continue;
      auto state = message.state;
      state.next_attempt_ms = 0;
      changes.push_back(
          spool::SpoolChange::state(message.layout.envelope.id, spool::encode_state(state), false));
    }
    if (changes.empty() && id != "all") return "error no message " + id + " in the queue";
    (void)writer.apply(changes);
    std::size_t count = 0;
    for (const auto& change : changes) {
      if (change.result)
        ++count;
      else
        std::cerr << "warning: " << change.result.error().message << "\n";
    }
    if (count == 0 && id != "all")
      return "error cannot write the state of " + id + ": " + changes[0].result.error().message;
    return "ok " + std::to_string(count) + " message(s) due at the next start";
  }
  auto message = directory.load(id);
  if (!message) return "error no message " + id + " in the queue";
  std::vector<spool::SpoolChange> changes;
  if (verb == "delete") {
    changes.push_back(spool::SpoolChange::remove(id, message->failed_area));
    (void)writer.apply(changes);
    if (!changes[0].result) return "error " + changes[0].result.error().message;
    return "ok " + id + " deleted";
  }
  if (verb == "bounce") {
    if (message->failed_area) return "error " + id + " already failed (it is in failed/)";
    const auto settlement = spool::bounce_pending(message->state, "bounced by the operator");
    changes.push_back(spool::SpoolChange::state(id, spool::encode_state(settlement.state), false));
    (void)writer.apply(changes);
    if (!changes[0].result)
      return "error cannot write the state of " + id + ": " + changes[0].result.error().message;
    return "ok " + id + " will be bounced when portrelay starts";
  }
  return "error unknown request";
}

}  // namespace

int queue(const QueueOptions& options) {
  config::Config config;
  try {
    config = config::load_config_file(options.config_path);
  } catch (const config::ConfigError& error) {
    std::cerr << error.what() << "\n";
    return kExitRefused;
  }
  const std::string& dir = config.spool.dir;
  bool as_owner = false;  // root that became the spool's owner
  auto cannot_read = [&dir, &as_owner]() {
    std::cerr << "error: cannot read the spool " << dir << ": " << std::strerror(EACCES)
              << (as_owner ? " (as its owner: files in it belong to another user; give them "
                             "to the owner)\n"
                           : "; run as root or as the spool owner\n");
    return EX_NOPERM;
  };
  // Only directories are opened here (never followed below the configured path), so that
  // root learns whose spool it is before it touches a file in it.
  std::unique_ptr<spool::SpoolDirectory> directory;
  try {
    directory = std::make_unique<spool::SpoolDirectory>(dir, /*create=*/false);
  } catch (const std::system_error& error) {
    // The daemon creates the spool when it first starts; until then there is nothing in it.
    if (options.action == "list" && error.code() == std::errc::no_such_file_or_directory) {
      if (options.json)
        std::cout << "[]\n";
      else
        std::cout << "Mail queue is empty (no spool yet at " << dir << ")\n";
      return EX_OK;
    }
    if (error.code() == std::errc::permission_denied) return cannot_read();
    std::cerr << "error: " << error.what() << "\n";
    return kExitRefused;
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return kExitRefused;
  }
  // Root on a spool another user owns acts as that user or not at all: the owner controls
  // every name in the spool, and root following one could be led to any file.
  if (::geteuid() == 0 && directory->owner_uid() != 0) {
    auto became = become_spool_owner(directory->owner_uid(), directory->owner_gid());
    if (!became) {
      std::cerr << "error: the spool " << dir << " belongs to uid " << directory->owner_uid()
                << "; root acts on it only as that user, and " << became.error().message << "\n";
      return EX_NOPERM;
    }
    as_owner = true;
  }
  if (options.action == "list") {
    auto report = directory->scan();
    const auto dropped = read_maildrop(config);
    if (options.json) {
      nlohmann::json all = nlohmann::json::array();
      for (const auto* list : {&report.messages, &report.failed})
        for (const auto& message : *list) all.push_back(to_json(message));
      for (const auto& entry : dropped) all.push_back(to_json(entry));
      std::cout << all.dump(2) << "\n";
    } else {
      print_table(report, dropped);
    }
    // Files the listing could not read are named, never passed over in silence; one it
    // was not allowed to read means the listing may be missing mail.
    for (const auto* skipped : {&report.unreadable, &report.corrupt})
      for (const auto& line : *skipped)
        std::cerr << "warning: skipped " << dir << "/" << line << "\n";
    return report.permission_denied > 0 ? cannot_read() : EX_OK;
  }
  if (options.action == "show") {
    auto message = directory->load(options.id);
    if (!message) {
      std::cerr << "error: " << options.id << ": " << message.error().message << "\n";
      return kExitRefused;
    }
    std::cout << to_json(*message).dump(2) << "\n";
    // The header section of the message, never the body.
    auto text = spool::read_spool_file(
        message->failed_area ? directory->failed_fd() : directory->queue_fd(), options.id,
        message->layout.body_offset + 64 * 1024);
    if (text) {
      std::string body =
          text->substr(std::min<std::size_t>(text->size(), message->layout.body_offset));
      auto end = body.find("\r\n\r\n");
      std::cout << "\n" << body.substr(0, end == std::string::npos ? body.size() : end + 2);
    }
    return EX_OK;
  }
  const std::string id =
      options.action == "retry" && (options.all || options.id.empty()) ? "all" : options.id;
  if (id.empty()) {
    std::cerr << "error: a queue id is required\n";
    return EX_USAGE;
  }
  std::string answer;
  if (directory->locked_by_other()) {
    // A daemon that does not answer within 10 s is reported, not waited for.
    const auto reply =
        ask_control(directory->control_path(), options.action + " " + id, std::chrono::seconds(10));
    if (!reply.connected) {
      std::cerr << "error: portrelay is running but does not answer on "
                << directory->control_path() << ": " << reply.problem << "\n";
      return EX_TEMPFAIL;
    }
    answer = reply.answer;
  } else {
    bool locked = false;
    try {
      locked = directory->try_lock();
    } catch (const std::exception& error) {  // a lock file that is not one: refused
      std::cerr << "error: " << error.what() << "\n";
      return kExitRefused;
    }
    if (!locked) {
      std::cerr << "error: the spool is busy, try again\n";
      return EX_TEMPFAIL;
    }
    answer = change_offline(*directory, options.action, id);
  }
  const spool::ControlAnswer parsed = spool::parse_control_answer(answer);
  switch (parsed.kind) {
    case spool::ControlAnswer::Kind::Ok:
      std::cout << parsed.text << "\n";
      return EX_OK;
    case spool::ControlAnswer::Kind::Error:
      std::cerr << "error: " << parsed.text << "\n";
      return kExitRefused;
    case spool::ControlAnswer::Kind::Malformed:
      break;
  }
  std::cerr << "error: portrelay "
            << (parsed.text.empty() ? "gave no answer" : "answered '" + parsed.text + "'") << " on "
            << directory->control_path() << "; the " << options.action
            << " may or may not have been carried out: check with 'portrelay queue list'\n";
  return EX_TEMPFAIL;
}

}  // namespace portrelay::cli
