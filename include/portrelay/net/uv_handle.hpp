#pragma once
// The one place where libuv handle lifetimes are handled.
//
// A libuv handle must stay allocated until its close callback runs, which happens on a
// later loop iteration than uv_close(). The C++ objects that own handles, however, are
// destroyed whenever their owner decides. UvHandle bridges the two: the handle lives in
// a heap box that is freed only in the close callback, and the box's back-pointer to the
// owner is cleared on destruction, so late callbacks (cancelled writes, a connect that
// completes during close) see no owner and do nothing.
#include <uv.h>

#include <utility>

namespace portrelay::net {

template <typename Handle, typename Owner>
class UvHandle {
 public:
  struct Box {
    Handle handle;
    Owner* owner;
  };

  explicit UvHandle(Owner* owner) : box_(new Box{}) {
    box_->owner = owner;
    box_->handle.data = box_;
  }
  ~UvHandle() { close(); }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;

  Handle* get() const { return &box_->handle; }
  uv_handle_t* as_handle() const { return reinterpret_cast<uv_handle_t*>(&box_->handle); }
  uv_stream_t* as_stream() const { return reinterpret_cast<uv_stream_t*>(&box_->handle); }

  // The owner of a handle from a callback, or nullptr once the owner is gone.
  static Owner* owner_of(const void* handle) {
    auto* box = static_cast<Box*>(static_cast<const uv_handle_t*>(handle)->data);
    return box ? box->owner : nullptr;
  }

  // Mark whether uv_*_init succeeded; an uninitialised handle is freed directly.
  void set_initialized() { initialized_ = true; }

  void close() {
    if (!box_) return;
    Box* box = std::exchange(box_, nullptr);
    box->owner = nullptr;
    if (!initialized_) {
      delete box;
      return;
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&box->handle),
             [](uv_handle_t* handle) { delete static_cast<Box*>(handle->data); });
  }
  bool closed() const { return box_ == nullptr; }

 private:
  Box* box_;
  bool initialized_ = false;
};

}  // namespace portrelay::net
