#include "portrelay/spool/control_server.hpp"

#include <sys/stat.h>
#include <unistd.h>

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
  ControlServer* server;
  net::UvHandle<uv_pipe_t, Client> pipe;
  std::string request;
  net::Timer deadline;
  Client(ControlServer* owner, uv_loop_t* loop) : server(owner), pipe(this), deadline(loop) {}
};

ControlServer::ControlServer(net::Loop& loop, Spool& spool, std::string path)
    : loop_(loop), spool_(spool), path_(std::move(path)), listener_(this) {}

ControlServer::~ControlServer() { stop(); }

void ControlServer::start() {
  ::unlink(path_.c_str());  // a socket left by a killed daemon
  uv_pipe_init(loop_.uv(), listener_.get(), 0);
  listener_.set_initialized();
  const mode_t old_mask = ::umask(0077);
  int status = uv_pipe_bind(listener_.get(), path_.c_str());
  ::umask(old_mask);
  if (status == 0)
    status = uv_listen(listener_.as_stream(), 16, [](uv_stream_t* stream, int listen_status) {
      auto* self = net::UvHandle<uv_pipe_t, ControlServer>::owner_of(stream);
      if (self && listen_status == 0) self->accept();
    });
  if (status != 0)
    throw std::runtime_error("cannot listen on " + path_ + ": " + uv_strerror(status));
}

void ControlServer::stop() {
  listener_.close();
  clients_.clear();
}

void ControlServer::accept() {
  auto client = std::make_unique<Client>(this, loop_.uv());
  uv_pipe_init(loop_.uv(), client->pipe.get(), 0);
  client->pipe.set_initialized();
  if (uv_accept(listener_.as_stream(), client->pipe.as_stream()) != 0) return;
  if (clients_.size() >= kMaxClients) return;  // closed as `client` goes
  Client* raw = client.get();
  clients_[raw] = std::move(client);
  raw->deadline.start(kClientDeadline, [this, raw]() {
    log::warn("queue_control_timeout", {{"detail", "no request line within 5 s; closed"}});
    finish(raw);
  });
  uv_read_start(
      raw->pipe.as_stream(),
      [](uv_handle_t*, std::size_t suggested, uv_buf_t* buffer) {
        buffer->base = new char[suggested];
        buffer->len = suggested;
      },
      [](uv_stream_t* stream, ssize_t count, const uv_buf_t* buffer) {
        std::unique_ptr<char[]> data(buffer->base);
        auto* client = net::UvHandle<uv_pipe_t, Client>::owner_of(stream);
        if (!client) return;
        if (count < 0) {
          client->server->finish(client);
          return;
        }
        client->request.append(buffer->base, static_cast<std::size_t>(count));
        auto newline = client->request.find('\n');
        if (newline == std::string::npos && client->request.size() < kMaxRequest) return;
        uv_read_stop(stream);
        std::string line = client->request.substr(0, std::min(newline, kMaxRequest));
        if (!line.empty() && line.back() == '\r') line.pop_back();
        // The request outlives the client if the daemon stops mid-write: libuv calls
        // back (cancelled) after the handle's owner is gone.
        struct Write {
          uv_write_t request{};
          std::string answer;
        };
        auto* write = new Write;
        ControlServer* server = client->server;
        if (line == "reload")
          write->answer = (server->reload_ ? server->reload_() : "error reload is not available");
        else
          write->answer = control_request(server->spool_, line);
        write->answer += "\n";
        log::info("queue_control", {{"request", line}, {"answer", write->answer}});
        uv_buf_t out =
            uv_buf_init(write->answer.data(), static_cast<unsigned>(write->answer.size()));
        uv_write(&write->request, stream, &out, 1, [](uv_write_t* request, int) {
          std::unique_ptr<Write> done(reinterpret_cast<Write*>(request));
          auto* owner = net::UvHandle<uv_pipe_t, Client>::owner_of(request->handle);
          if (owner) owner->server->finish(owner);
        });
      });
}

void ControlServer::finish(Client* client) {
  auto it = clients_.find(client);
  if (it == clients_.end()) return;
  loop_.defer_delete(std::move(it->second));  // inside its own callback
  clients_.erase(it);
}

}  // namespace portrelay::spool
