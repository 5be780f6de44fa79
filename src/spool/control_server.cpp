#include "portrelay/spool/control_server.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "portrelay/base/log.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/spool/control_protocol.hpp"

namespace portrelay::spool {
namespace {

constexpr std::size_t kMaxRequest = kMaxControlLine;
constexpr std::size_t kMaxClients = 16;  // operators, not traffic: more are turned away
// A request is one short line and its answer one more: a client that has not sent its line
// and taken its answer by then is dropped, so idle connections cannot hold every slot.
constexpr std::chrono::milliseconds kClientDeadline{5000};

}  // namespace

std::string control_request(Spool& spool, const std::string& line) {
  const auto [verb, argument] = parse_control_request(line);
  Result<std::string> result = Error{"unknown request (retry, delete, bounce)"};
  if (verb == "retry")
    result = spool.retry(argument);
  else if (argument.empty() && (verb == "delete" || verb == "bounce"))
    result = Error{"a queue id is required"};
  else if (verb == "delete")
    result = spool.remove(argument);
  else if (verb == "bounce")
    result = spool.bounce(argument);
  return result ? "ok " + *result : "error " + result.error().message;
}

struct ControlServer::Client {
  std::unique_ptr<net::PipeStream> pipe;
  std::string request;
  net::Timer deadline;
  Client(std::unique_ptr<net::PipeStream> accepted, uv_loop_t* loop)
      : pipe(std::move(accepted)), deadline(loop) {}
};

ControlServer::ControlServer(net::Loop& loop, Spool& spool, std::string path)
    : loop_(loop),
      spool_(spool),
      path_(std::move(path)),
      listener_(loop.uv(),
                [this](std::unique_ptr<net::PipeStream> pipe) { accept(std::move(pipe)); }) {}

ControlServer::~ControlServer() { stop(); }

void ControlServer::start() {
  ::unlink(path_.c_str());  // a socket left by a killed daemon
  const int status = listener_.listen_owner_only(path_, 16);
  if (status != 0)
    throw std::runtime_error("cannot listen on " + path_ + ": " + uv_strerror(status));
}

void ControlServer::stop() {
  listener_.close();
  clients_.clear();
}

void ControlServer::accept(std::unique_ptr<net::PipeStream> pipe) {
  if (clients_.size() >= kMaxClients) return;  // closed as `pipe` goes
  auto client = std::make_unique<Client>(std::move(pipe), loop_.uv());
  Client* raw = client.get();
  clients_[raw] = std::move(client);
  raw->deadline.start(kClientDeadline, [this, raw]() {
    log::warn("queue_control_timeout", {{"detail", "no request line within 5 s; closed"}});
    finish(raw);
  });
  raw->pipe->start_reading(
      [this, raw](std::string_view data, int status) { on_read(raw, data, status); });
}

void ControlServer::on_read(Client* client, std::string_view data, int status) {
  if (status < 0) return finish(client);
  client->request.append(data);
  const auto newline = client->request.find('\n');
  if (newline == std::string::npos && client->request.size() < kMaxRequest) return;
  client->pipe->stop_reading();
  std::string line = client->request.substr(0, std::min(newline, kMaxRequest));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::string answer = line == "reload" ? (reload_ ? reload_() : "error reload is not available")
                                        : control_request(spool_, line);
  answer += "\n";
  log::info("queue_control", {{"request", line}, {"answer", answer}});
  // Closed once the answer is written (or could not be): the client reads to the end.
  client->pipe->on_drained([this, client]() { finish(client); });
  if (!client->pipe->write(std::move(answer))) finish(client);
}

void ControlServer::finish(Client* client) {
  auto it = clients_.find(client);
  if (it == clients_.end()) return;
  loop_.defer_delete(std::move(it->second));  // inside its own callback
  clients_.erase(it);
}

}  // namespace portrelay::spool
