#include "portrelay/net/connection.hpp"

namespace portrelay::net {

Connection::Connection(std::unique_ptr<TcpStream> stream) : stream_(std::move(stream)) {}

Connection::~Connection() { *alive_ = false; }

void Connection::start(DataCallback on_data, ClosedCallback on_closed) {
  on_data_ = std::move(on_data);
  on_closed_ = std::move(on_closed);
  resume_reading();
}

void Connection::resume_reading() {
  if (reading_ || !stream_->is_open()) return;
  reading_ = true;
  stream_->start_reading([this](std::string_view data, int status) { on_read(data, status); });
}

void Connection::pause_reading() {
  if (!reading_) return;
  reading_ = false;
  stream_->stop_reading();
}

bool Connection::tls_established() const {
  return engine_ && engine_->state() == tls::Engine::State::Established;
}

void Connection::send(std::string_view plaintext) {
  if (!engine_) {
    stream_->write(std::string(plaintext));
    return;
  }
  engine_->write_plaintext(plaintext);
  flush_ciphertext();
}

void Connection::flush_ciphertext() {
  std::string out = engine_->take_ciphertext();
  if (!out.empty()) stream_->write(std::move(out));
}

void Connection::start_tls(std::unique_ptr<tls::Engine> engine, TlsCallback done) {
  engine_ = std::move(engine);
  tls_done_ = std::move(done);
  flush_ciphertext();  // a client engine has its ClientHello ready
  resume_reading();
}

bool Connection::drive_tls_callbacks() {
  std::weak_ptr<bool> alive = alive_;
  auto state = engine_->state();
  if (tls_done_ && state != tls::Engine::State::Handshaking) {
    auto done = std::move(tls_done_);
    tls_done_ = nullptr;
    done(state == tls::Engine::State::Established);
    if (alive.expired()) return false;
  }
  return true;
}

void Connection::on_read(std::string_view data, int status) {
  std::weak_ptr<bool> alive = alive_;
  if (status < 0) {
    reading_ = false;
    if (tls_done_) {
      // The peer hung up during the handshake.
      auto done = std::move(tls_done_);
      tls_done_ = nullptr;
      done(false);
      if (alive.expired()) return;
    }
    // Callbacks are copied before the call: the callee may destroy this Connection.
    if (auto closed = on_closed_) closed(status);
    return;
  }
  if (!engine_) {
    auto deliver = on_data_;
    deliver(data);
    return;
  }
  engine_->feed_ciphertext(data);
  flush_ciphertext();
  if (!drive_tls_callbacks()) return;
  std::string plaintext = engine_->take_plaintext();
  if (!plaintext.empty()) {
    auto deliver = on_data_;
    deliver(plaintext);
    if (alive.expired()) return;
  }
  auto state = engine_->state();
  if (state == tls::Engine::State::Failed || state == tls::Engine::State::Closed) {
    pause_reading();
    if (auto closed = on_closed_) closed(UV_EOF);
  }
}

void Connection::finish(std::function<void()> done) {
  if (engine_ && engine_->state() == tls::Engine::State::Established) {
    engine_->shutdown();
    flush_ciphertext();
  }
  stream_->shutdown_after_writes(std::move(done));
}

void Connection::close() {
  pause_reading();
  stream_->close();
}

}  // namespace portrelay::net
