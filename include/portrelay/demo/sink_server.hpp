#pragma once
// A minimal SMTP server that accepts every message and discards it after counting.
// It plays the working upstream in `portrelay demo` and the sink in the benchmarks, on
// loopback only. It reuses smtp::ServerSession, so it speaks the same SMTP as the relay.
#include <uv.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "portrelay/net/connection.hpp"
#include "portrelay/net/tcp_listener.hpp"
#include "portrelay/smtp/server_session.hpp"
#include "portrelay/tls/context.hpp"

namespace portrelay::demo {

struct SinkOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  bool implicit_tls = false;
  std::shared_ptr<tls::Context> tls;  // with implicit_tls false: offered as STARTTLS
  std::string username;               // non-empty: AUTH offered (after TLS) and required
  std::string password;
  std::string hostname = "sink.portrelay.test";
};

class SinkServer {
 public:
  SinkServer(uv_loop_t* loop, SinkOptions options);
  ~SinkServer();
  // Returns 0 or a libuv error.
  int start();
  std::uint16_t port() const { return listener_.bound_port(); }
  std::uint64_t messages() const { return messages_; }
  std::uint64_t bytes() const { return bytes_; }
  std::uint64_t tls_handshakes() const { return tls_handshakes_; }

 private:
  class Session;
  void remove(Session* session);

  uv_loop_t* loop_;
  SinkOptions options_;
  net::TcpListener listener_;
  std::map<Session*, std::unique_ptr<Session>> sessions_;
  std::vector<std::unique_ptr<Session>> finished_;
  std::atomic<std::uint64_t> messages_{0};
  std::atomic<std::uint64_t> bytes_{0};
  std::atomic<std::uint64_t> tls_handshakes_{0};
  std::uint64_t next_queue_id_ = 1;
};

}  // namespace portrelay::demo
