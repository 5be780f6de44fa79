#pragma once
// One client connection on the local listener: moves bytes between the socket and the
// pure smtp::ServerSession, enforces client timeouts and input backpressure, and hands
// envelope and body to its relay::MessageSink.
#include <functional>
#include <memory>
#include <string>

#include "portrelay/metrics/metrics.hpp"
#include "portrelay/net/connection.hpp"
#include "portrelay/net/loop.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/relay/message_sink.hpp"
#include "portrelay/smtp/server_session.hpp"

namespace portrelay::server {

class Authenticator;

struct SessionEnvironment {
  net::Loop* loop = nullptr;
  // Where each session's messages go (passthrough relay, spool, ...): one sink per session.
  std::function<std::unique_ptr<relay::MessageSink>(const std::string& session_id)> make_sink;
  metrics::Metrics* metrics = nullptr;
  std::shared_ptr<tls::Context> tls_context;     // null: no STARTTLS
  const Authenticator* authenticator = nullptr;  // null: no AUTH
  config::Duration command_timeout{};
  config::Duration data_timeout{};
};

class SubmissionSession : private smtp::ServerSessionHandler {
 public:
  // `on_finished` runs once when the session is over; the owner may then destroy it
  // (not from inside the callback).
  SubmissionSession(const SessionEnvironment& environment, smtp::ServerPolicy policy,
                    std::unique_ptr<net::TcpStream> stream, std::string id,
                    std::function<void(SubmissionSession*)> on_finished);
  ~SubmissionSession() override;

  // Starts the session: greeting, or refusal for clients outside the allow-list.
  void start(bool allowed, bool implicit_tls);
  void shutdown() {
    session_.shutdown();
    after_event();
  }
  void force_close();
  const std::string& id() const { return id_; }

 private:
  // smtp::ServerSessionHandler
  void send(std::string bytes) override;
  void close_after_send() override;
  void mail_from(const smtp::PathArgument& sender) override;
  void rcpt_to(const smtp::PathArgument& recipient) override;
  void data_end() override;
  void authenticate(const std::string& username, const std::string& password) override;
  void start_tls() override;
  void data_begin() override;
  void data_chunk(std::string_view content) override;
  void data_rejected(smtp::DataReader::Violation violation) override;
  void reset() override;

  void on_input(std::string_view bytes);
  void after_event();  // re-arm the timeout, apply backpressure
  void finish(const char* by);
  std::function<void(const smtp::Reply&)> completer();

  const SessionEnvironment& environment_;
  std::string id_;
  std::string peer_;
  std::unique_ptr<net::Connection> connection_;
  smtp::ServerSession session_;
  std::unique_ptr<relay::MessageSink> sink_;
  net::Timer timer_;
  std::function<void(SubmissionSession*)> on_finished_;
  bool finished_ = false;
  bool closing_ = false;
  bool tls_handshaking_ = false;  // after our 220 to STARTTLS, until the handshake ends
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace portrelay::server
