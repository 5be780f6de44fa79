// `portrelay queue list|show|retry|delete|bounce` and `mailq`.
//
// Listing reads the spool files and works with or without a daemon (files enter queue/
// complete and states are replaced by rename, so a reader never sees half of one).
// Changes go through the running daemon's control socket, so its in-memory queue stays
// the truth; with no daemon (the spool lock is free) they are made on the files directly,
// under the lock, and the next start picks them up.
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "portrelay/cli/commands.hpp"
#include "portrelay/config/config.hpp"
#include "portrelay/spool/control_protocol.hpp"
#include "portrelay/spool/maildrop.hpp"
#include "portrelay/spool/spool_directory.hpp"

namespace portrelay::cli {
namespace {

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
  if (count == 0)
    std::printf("Mail queue is empty\n");
  else
    std::printf("-- %llu KiB in %zu message(s)\n", static_cast<unsigned long long>(bytes / 1024),
                count);
}

// One request to the running daemon; nullopt if none listens.
std::optional<std::string> ask_daemon(const std::string& socket_path, const std::string& request) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof address.sun_path) {
    ::close(fd);
    return std::nullopt;
  }
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", socket_path.c_str());
  // A daemon that does not answer within 10 s is reported, not waited for.
  timeval limit{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  std::string line = request + "\n";
  if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    ::close(fd);
    return std::nullopt;
  }
  std::string answer;
  char buffer[512];
  ssize_t got;
  while ((got = ::read(fd, buffer, sizeof buffer)) > 0)
    answer.append(buffer, static_cast<std::size_t>(got));
  ::close(fd);
  while (!answer.empty() && (answer.back() == '\n' || answer.back() == '\r')) answer.pop_back();
  return answer;
}

// The same changes on the files, with no daemon running (the caller holds the lock).
std::string change_offline(spool::SpoolDirectory& directory, const std::string& verb,
                           const std::string& id) {
  // Each message's own id: with "retry all", `id` is "all", not a message.
  auto rewrite_state = [&](const spool::StoredMessage& message, spool::DeliveryState state) {
    const std::string& own_id = message.layout.envelope.id;
    const std::string tmp = directory.tmp_path(own_id + ".state.cli");
    const std::string text = spool::encode_state(state);
    FILE* file = std::fopen(tmp.c_str(), "w");
    if (!file) return false;
    directory.give_to_owner(fileno(file));
    bool ok = std::fwrite(text.data(), 1, text.size(), file) == text.size();
    ok = (std::fflush(file) == 0) && ok && ::fdatasync(fileno(file)) == 0;
    std::fclose(file);
    const std::string target =
        (message.failed_area ? directory.failed_path(own_id) : directory.queue_path(own_id)) +
        ".state";
    ok = ok && std::rename(tmp.c_str(), target.c_str()) == 0;
    ::fsync(message.failed_area ? directory.failed_fd() : directory.queue_fd());
    return ok;
  };
  if (verb == "retry") {
    std::size_t count = 0;
    for (const auto& message : directory.scan().messages) {
      if (id != "all" && message.layout.envelope.id != id) continue;
      auto state = message.state;
      state.next_attempt_ms = 0;
      if (rewrite_state(message, state)) ++count;
    }
    if (count == 0 && id != "all") return "error no message " + id + " in the queue";
    return "ok " + std::to_string(count) + " message(s) due at the next start";
  }
  auto message = directory.load(id);
  if (!message) return "error no message " + id + " in the queue";
  if (verb == "delete") {
    const std::string path =
        message->failed_area ? directory.failed_path(id) : directory.queue_path(id);
    if (::unlink(path.c_str()) != 0) return "error cannot delete " + path;
    ::unlink((path + ".state").c_str());
    ::fsync(message->failed_area ? directory.failed_fd() : directory.queue_fd());
    return "ok " + id + " deleted";
  }
  if (verb == "bounce") {
    if (message->failed_area) return "error " + id + " already failed (it is in failed/)";
    auto state = message->state;
    for (auto& recipient : state.recipients)
      if (recipient.status == spool::RecipientStatus::Pending) {
        recipient.status = spool::RecipientStatus::Bounced;
        recipient.reply = "bounced by the operator";
      }
    if (!rewrite_state(*message, state)) return "error cannot write the state of " + id;
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
    return 1;
  }
  std::unique_ptr<spool::SpoolDirectory> directory;
  try {
    directory = std::make_unique<spool::SpoolDirectory>(config.spool.dir, /*create=*/false);
  } catch (const std::exception& error) {
    // The daemon creates the spool when it first starts; until then there is nothing in it.
    if (options.action == "list") {
      if (options.json)
        std::cout << "[]\n";
      else
        std::cout << "Mail queue is empty (no spool yet at " << config.spool.dir << ")\n";
      return 0;
    }
    std::cerr << "error: " << error.what() << "\n";
    return 1;
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
    return 0;
  }
  if (options.action == "show") {
    auto message = directory->load(options.id);
    if (!message) {
      std::cerr << "error: " << options.id << ": " << message.error().message << "\n";
      return 1;
    }
    std::cout << to_json(*message).dump(2) << "\n";
    // The header section of the message, never the body.
    auto text = spool::read_file(message->failed_area ? directory->failed_path(options.id)
                                                      : directory->queue_path(options.id),
                                 message->layout.body_offset + 64 * 1024);
    if (text) {
      std::string body =
          text->substr(std::min<std::size_t>(text->size(), message->layout.body_offset));
      auto end = body.find("\r\n\r\n");
      std::cout << "\n" << body.substr(0, end == std::string::npos ? body.size() : end + 2);
    }
    return 0;
  }
  const std::string id =
      options.action == "retry" && (options.all || options.id.empty()) ? "all" : options.id;
  if (id.empty()) {
    std::cerr << "error: a queue id is required\n";
    return EX_USAGE;
  }
  std::string answer;
  if (directory->locked_by_other()) {
    auto reply = ask_daemon(directory->control_path(), options.action + " " + id);
    if (!reply) {
      std::cerr << "error: portrelay is running but does not answer on "
                << directory->control_path() << "\n";
      return EX_TEMPFAIL;
    }
    answer = *reply;
  } else if (directory->try_lock()) {
    answer = change_offline(*directory, options.action, id);
  } else {
    std::cerr << "error: the spool is busy, try again\n";
    return EX_TEMPFAIL;
  }
  const spool::ControlAnswer parsed = spool::parse_control_answer(answer);
  switch (parsed.kind) {
    case spool::ControlAnswer::Kind::Ok:
      std::cout << parsed.text << "\n";
      return EX_OK;
    case spool::ControlAnswer::Kind::Error:
      std::cerr << "error: " << parsed.text << "\n";
      return 1;
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
