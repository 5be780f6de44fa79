#pragma once
// relay::SharedHealth: what every loop of a daemon ([server] workers) knows about the
// endpoints: one HealthTable, and one EndpointSizes (each endpoint's EHLO SIZE, learned by
// any loop's connection or the main loop's probes, so every loop announces the same SIZE). A
// failure (or a suspect port, or a recovery) that one loop's selector learns is in the
// table the moment it is recorded, so the next selection on any loop skips that endpoint
// and no other loop pays the blocked port's stagger again.
//
// HealthTable stays pure (time passed in, no locks); this wraps it with one mutex. Every
// access is a short critical section over the table alone: lock() gives the table for one
// statement or one block, and nothing that can block (I/O, logging, callbacks) runs under
// it. Only the main loop's selector probes (fail-back and refresh), so the probing and
// refreshing flags have one writer; the others read them when they plan.
#include <mutex>
#include <utility>

#include "portrelay/relay/endpoint_sizes.hpp"
#include "portrelay/relay/health_table.hpp"

namespace portrelay::relay {

class SharedHealth {
 public:
  SharedHealth(HealthTable table, EndpointSizes sizes)
      : table_(std::move(table)), sizes_(std::move(sizes)) {}
  SharedHealth(const SharedHealth&) = delete;
  SharedHealth& operator=(const SharedHealth&) = delete;

  // The table, locked while this object lives.
  class Locked {
   public:
    explicit Locked(SharedHealth& shared)
        : lock_(shared.mutex_), table_(shared.table_), sizes_(shared.sizes_) {}
    HealthTable* operator->() const { return &table_; }
    HealthTable& operator*() const { return table_; }
    EndpointSizes& sizes() const { return sizes_; }

   private:
    std::unique_lock<std::mutex> lock_;
    HealthTable& table_;
    EndpointSizes& sizes_;
  };
  Locked lock() { return Locked(*this); }
  // A copy of the table (or the sizes) as it is now, for readers elsewhere: /readyz, tests,
  // a reloaded selector inheriting them.
  HealthTable snapshot() {
    std::lock_guard lock(mutex_);
    return table_;
  }
  EndpointSizes sizes_snapshot() {
    std::lock_guard lock(mutex_);
    return sizes_;
  }

 private:
  std::mutex mutex_;
  HealthTable table_;
  EndpointSizes sizes_;
};

}  // namespace portrelay::relay
