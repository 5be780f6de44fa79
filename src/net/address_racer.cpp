#include "portrelay/net/address_racer.hpp"

#include <algorithm>

namespace portrelay::net {

AddressRacer::AddressRacer(Loop& loop, std::vector<sockaddr_storage> addresses,
                           std::chrono::milliseconds stagger, std::chrono::milliseconds deadline)
    : loop_(loop),
      addresses_(std::move(addresses)),
      stagger_(stagger),
      deadline_(deadline),
      stagger_timer_(loop.uv()),
      deadline_timer_(loop.uv()) {
  last_failure_.error = UV_EADDRNOTAVAIL;  // no address at all
}

void AddressRacer::start(Callback callback) {
  callback_ = std::move(callback);
  deadline_timer_.start(deadline_, [this]() {
    Result timed_out;
    timed_out.error = UV_ETIMEDOUT;
    finish(std::move(timed_out));
  });
  // Never call back from inside start(): the first attempt begins on the next turn.
  stagger_timer_.start(std::chrono::milliseconds(0), [this]() { launch_next(); });
}

void AddressRacer::launch_next() {
  if (next_ >= addresses_.size()) {
    if (running_.empty()) finish(std::move(last_failure_));
    return;
  }
  const sockaddr_storage& address = addresses_[next_++];
  auto stream = std::make_unique<TcpStream>(loop_.uv());
  TcpStream* raw = stream.get();
  running_.push_back(
      {std::move(stream), format_address(reinterpret_cast<const sockaddr*>(&address))});
  // A silent address must not hold up the others.
  if (next_ < addresses_.size()) stagger_timer_.start(stagger_, [this]() { launch_next(); });
  int rc = raw->connect(reinterpret_cast<const sockaddr*>(&address),
                        [this, raw](int status) { on_connected(raw, status); });
  if (rc != 0) on_connected(raw, rc);
}

void AddressRacer::on_connected(TcpStream* stream, int status) {
  auto it = std::find_if(running_.begin(), running_.end(),
                         [stream](const Attempt& a) { return a.stream.get() == stream; });
  if (it == running_.end()) return;
  if (status == 0) {
    Result won{std::move(it->stream), it->target, 0};
    running_.erase(it);
    return finish(std::move(won));
  }
  last_failure_ = Result{nullptr, it->target, status};
  loop_.defer_delete(std::move(it->stream));  // its connect callback is on the stack
  running_.erase(it);
  launch_next();  // a refused address hands over at once
}

void AddressRacer::finish(Result result) {
  stagger_timer_.stop();
  deadline_timer_.stop();
  running_.clear();  // the losers are cancelled
  auto callback = std::move(callback_);
  callback_ = nullptr;
  if (callback) callback(std::move(result));
}

}  // namespace portrelay::net
