#include "portrelay/demo/sink_server.hpp"

#include "portrelay/net/timer.hpp"

namespace portrelay::demo {
class SinkServer::Session : private smtp::ServerSessionHandler {
 public:
  Session(SinkServer& server, std::unique_ptr<net::TcpStream> stream, smtp::ServerPolicy policy)
      : server_(server),
        connection_(std::move(stream)),
        session_(std::move(policy), *this, server.options_.implicit_tls),
        reaper_(server.loop_) {}

  void start() {
    connection_.start([this](std::string_view bytes) { session_.feed(bytes); },
                      [this](int) { done(); });
    if (!server_.options_.implicit_tls) return session_.start();
    start_tls_engine([this]() { session_.start(); });
  }

 private:
  void start_tls_engine(std::function<void()> then) {
    connection_.start_tls(tls::Engine::server(server_.options_.tls), [this, then](bool ok) {
      if (!ok) return done();
      ++server_.tls_handshakes_;
      then();
    });
  }

  void done() {
    if (finished_) return;
    finished_ = true;
    connection_.close();
    server_.remove(this);
  }

  void send(std::string bytes) override { connection_.send(bytes); }
  void close_after_send() override {
    connection_.finish();
    reaper_.start(std::chrono::milliseconds(50), [this]() { done(); });
  }
  void mail_from(const smtp::PathArgument&) override {
    size_ = 0;
    session_.complete(smtp::make_reply(250, "2.1.0", "Ok"));
  }
  void rcpt_to(const smtp::PathArgument&) override {
    session_.complete(smtp::make_reply(250, "2.1.5", "Ok"));
  }
  void data_begin() override {}
  void data_chunk(std::string_view content) override { size_ += content.size(); }
  void data_rejected(smtp::DataReader::Violation) override {}
  void reset() override {}
  void data_end() override {
    ++server_.messages_;
    server_.bytes_ += size_;
    session_.complete(smtp::make_reply(
        250, "2.0.0", "Ok: queued as SINK" + std::to_string(server_.next_queue_id_++)));
  }
  void authenticate(const std::string& username, const std::string& password) override {
    bool ok = username == server_.options_.username && password == server_.options_.password;
    session_.complete(ok ? smtp::make_reply(235, "2.7.0", "Authentication successful")
                         : smtp::make_reply(535, "5.7.8", "Authentication credentials invalid"));
  }
  void start_tls() override {
    start_tls_engine([this]() { session_.tls_started(); });
  }

  SinkServer& server_;
  net::Connection connection_;
  smtp::ServerSession session_;
  net::Timer reaper_;
  std::uint64_t size_ = 0;
  bool finished_ = false;
};

SinkServer::SinkServer(uv_loop_t* loop, SinkOptions options)
    : loop_(loop),
      options_(std::move(options)),
      listener_(loop, [this](std::unique_ptr<net::TcpStream> stream) {
        smtp::ServerPolicy policy;
        policy.hostname = options_.hostname;
        policy.max_message_size = 64ull << 20;
        policy.max_recipients = 1000;
        policy.starttls_offered = options_.tls && !options_.implicit_tls;
        policy.auth_offered = !options_.username.empty();
        policy.auth_required = !options_.username.empty();
        auto session = std::make_unique<Session>(*this, std::move(stream), policy);
        Session* raw = session.get();
        sessions_.emplace(raw, std::move(session));
        raw->start();
      }) {}

SinkServer::~SinkServer() = default;

int SinkServer::start() { return listener_.listen(options_.host, options_.port); }

void SinkServer::remove(Session* session) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  // Still on the call stack: keep it until the next removal or the server's end.
  finished_.clear();
  finished_.push_back(std::move(it->second));
  sessions_.erase(it);
}

}  // namespace portrelay::demo
