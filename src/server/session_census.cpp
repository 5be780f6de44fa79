#include "portrelay/server/session_census.hpp"

namespace portrelay::server {

SessionCensus::SessionCensus(std::size_t loops) : slots_(loops == 0 ? 1 : loops) {}

SessionCensus::Counts SessionCensus::others(std::size_t loop, const std::string& client_ip) const {
  Counts counts;
  if (slots_.size() == 1) return counts;
  std::lock_guard lock(mutex_);
  for (std::size_t index = 0; index < slots_.size(); ++index) {
    if (index == loop) continue;
    const Slot& slot = slots_[index];
    counts.live += slot.live;
    counts.before_mail += slot.before_mail;
    if (auto found = slot.by_address.find(client_ip); found != slot.by_address.end())
      counts.from_address += found->second;
  }
  return counts;
}

void SessionCensus::publish(std::size_t loop, std::size_t live, std::size_t before_mail) {
  if (slots_.size() == 1) return;
  std::lock_guard lock(mutex_);
  slots_[loop].live = live;
  slots_[loop].before_mail = before_mail;
}

void SessionCensus::session_started(std::size_t loop, const std::string& client_ip) {
  if (slots_.size() == 1) return;
  std::lock_guard lock(mutex_);
  ++slots_[loop].by_address[client_ip];
  ++slots_[loop].started;
}

std::size_t SessionCensus::started(std::size_t loop) const {
  std::lock_guard lock(mutex_);
  return slots_.at(loop).started;
}

void SessionCensus::session_ended(std::size_t loop, const std::string& client_ip) {
  if (slots_.size() == 1) return;
  std::lock_guard lock(mutex_);
  auto& by_address = slots_[loop].by_address;
  auto found = by_address.find(client_ip);
  if (found == by_address.end()) return;
  if (--found->second == 0) by_address.erase(found);
}

}  // namespace portrelay::server
