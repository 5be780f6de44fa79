#pragma once
// A byte stream to a peer that can switch to TLS in place (STARTTLS) or start in TLS
// (implicit TLS). Protocol code sees plaintext only; when a TLS engine is installed,
// every byte in or out passes through it.
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "portrelay/net/tcp_stream.hpp"
#include "portrelay/tls/engine.hpp"

namespace portrelay::net {

class Connection {
 public:
  using DataCallback = std::function<void(std::string_view plaintext)>;
  // The peer closed, the socket failed, or TLS failed after being established.
  using ClosedCallback = std::function<void(int status)>;
  using TlsCallback = std::function<void(bool ok)>;

  explicit Connection(std::unique_ptr<TcpStream> stream);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start(DataCallback on_data, ClosedCallback on_closed);
  void send(std::string_view plaintext);
  // Installs a TLS engine: bytes already received are *not* passed to it (the caller
  // discards buffered plaintext first, as RFC 3207 requires). `done` reports the end
  // of the handshake; engine->failure()/error() tell why it failed.
  void start_tls(std::unique_ptr<tls::Engine> engine, TlsCallback done);
  const tls::Engine* tls() const { return engine_.get(); }
  bool tls_established() const;

  void pause_reading();
  void resume_reading();
  std::size_t write_queue_size() const { return stream_->write_queue_size(); }
  void on_drained(std::function<void()> callback) { stream_->on_drained(std::move(callback)); }
  // Sends what is queued, then closes the write side (TLS close_notify first); `done` is
  // called once that is sent (not if the connection is closed first).
  void finish(std::function<void()> done = nullptr);
  void close();
  bool is_open() const { return stream_ && stream_->is_open(); }
  std::string peer_address() const { return stream_->peer_address(); }
  bool peer_sockaddr(sockaddr_storage& out) const { return stream_->peer_sockaddr(out); }

 private:
  void on_read(std::string_view data, int status);
  void flush_ciphertext();
  bool drive_tls_callbacks();  // false if `this` may have been destroyed

  std::unique_ptr<TcpStream> stream_;
  std::unique_ptr<tls::Engine> engine_;
  DataCallback on_data_;
  ClosedCallback on_closed_;
  TlsCallback tls_done_;
  bool reading_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace portrelay::net
