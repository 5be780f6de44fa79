#include "portrelay/net/timer.hpp"

namespace portrelay::net {

Timer::Timer(uv_loop_t* loop) : handle_(this) {
  uv_timer_init(loop, handle_.get());
  handle_.set_initialized();
}

void Timer::start(std::chrono::milliseconds delay, std::function<void()> callback) {
  callback_ = std::move(callback);
  // libuv counts from the time it cached at the start of this loop turn, which on a busy
  // machine can be milliseconds old: the timer would fire early, and a race's stagger
  // (compared with the real clock to tell suspects) would come up short.
  uv_update_time(uv_handle_get_loop(handle_.as_handle()));
  uv_timer_start(
      handle_.get(),
      [](uv_timer_t* timer) {
        Timer* self = UvHandle<uv_timer_t, Timer>::owner_of(timer);
        if (!self) return;
        // The callback may destroy this Timer: move it out first.
        auto callback = std::move(self->callback_);
        self->callback_ = nullptr;
        if (callback) callback();
      },
      static_cast<uint64_t>(delay.count() < 0 ? 0 : delay.count()), 0);
}

void Timer::stop() {
  uv_timer_stop(handle_.get());
  callback_ = nullptr;
}

bool Timer::active() const { return uv_is_active(handle_.as_handle()) != 0; }

}  // namespace portrelay::net
