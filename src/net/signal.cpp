#include "portrelay/net/signal.hpp"

namespace portrelay::net {

Signal::Signal(uv_loop_t* loop) : handle_(this) {
  uv_signal_init(loop, handle_.get());
  handle_.set_initialized();
}

int Signal::start(int signum, std::function<void(int)> callback) {
  callback_ = std::move(callback);
  return uv_signal_start(
      handle_.get(),
      [](uv_signal_t* handle, int signum) {
        Signal* self = UvHandle<uv_signal_t, Signal>::owner_of(handle);
        if (!self) return;
        auto callback = self->callback_;  // may close this Signal
        if (callback) callback(signum);
      },
      signum);
}

}  // namespace portrelay::net
