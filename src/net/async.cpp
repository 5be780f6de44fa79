#include "portrelay/net/async.hpp"

namespace portrelay::net {

Async::Async(uv_loop_t* loop, std::function<void()> callback)
    : handle_(this), callback_(std::move(callback)) {
  uv_async_init(loop, handle_.get(), [](uv_async_t* handle) {
    Async* self = UvHandle<uv_async_t, Async>::owner_of(handle);
    if (!self) return;
    auto callback = self->callback_;  // the callback may close or destroy this Async
    if (callback) callback();
  });
  handle_.set_initialized();
}

void Async::send() {
  if (!handle_.closed()) uv_async_send(handle_.get());
}

}  // namespace portrelay::net
