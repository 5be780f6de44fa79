#include "portrelay/relay/shared_pauses.hpp"

namespace portrelay::relay {

void SharedPauses::publish(const std::string& upstream, TimePoint until, PauseKind kind) {
  std::lock_guard lock(mutex_);
  Pause& known = pauses_[upstream];
  if (until <= known.until) return;
  known = {until, kind};
  version_.fetch_add(1, std::memory_order_release);
}

std::optional<SharedPauses::Pause> SharedPauses::find(const std::string& upstream) const {
  std::lock_guard lock(mutex_);
  auto found = pauses_.find(upstream);
  if (found == pauses_.end()) return std::nullopt;
  return found->second;
}

}  // namespace portrelay::relay
