#pragma once
// relay::IdleSet: the bookkeeping of the upstream pool, pure. Per endpoint it keeps idle
// items (ready connections) newest last, at most `max_per_endpoint`, each until
// `idle_timeout` after it was added. Time is a parameter, so expiry is unit-tested with a
// fake clock; UpstreamPool is the glue with one loop timer armed at next_expiry().
//
// The size follows demand without counting it: every item handed back is kept (up to the
// ceiling), and take() hands out the newest. So what the last idle_timeout needed at once
// stays (each of those items came back within it), and when demand falls the items it no
// longer reaches are the oldest, which expire untouched. A kept item is an open connection
// that was open anyway: keeping it never adds one, so an upstream's max_connections (its
// gate counts pooled connections) bounds the pool too.
#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <vector>

namespace portrelay::relay {

template <typename T>
class IdleSet {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::milliseconds;

  IdleSet(std::size_t endpoints, std::size_t max_per_endpoint, Duration idle_timeout)
      : max_per_endpoint_(max_per_endpoint), idle_timeout_(idle_timeout), idle_(endpoints) {}

  // Keeps `item` for `endpoint` until now + idle_timeout. False (item untouched) when that
  // endpoint already keeps max_per_endpoint items (the ceiling).
  bool add(std::size_t endpoint, T& item, TimePoint now) {
    auto& queue = idle_.at(endpoint);
    if (queue.size() >= max_per_endpoint_) return false;
    queue.push_back({std::move(item), now + idle_timeout_});
    return true;
  }

  // The most recently added item of `endpoint` that `usable` accepts; the unusable ones
  // met on the way are dropped into `dropped`.
  template <typename Usable>
  std::optional<T> take(std::size_t endpoint, Usable usable, std::vector<T>& dropped) {
    auto& queue = idle_.at(endpoint);
    while (!queue.empty()) {
      T item = std::move(queue.back().item);
      queue.pop_back();
      if (usable(item)) return item;
      dropped.push_back(std::move(item));
    }
    return std::nullopt;
  }

  // Removes and returns every item idle since at least idle_timeout.
  std::vector<T> expire(TimePoint now) {
    std::vector<T> expired;
    for (auto& queue : idle_) {
      // Oldest first: items expire in the order they were added.
      while (!queue.empty() && queue.front().expires <= now) {
        expired.push_back(std::move(queue.front().item));
        queue.pop_front();
      }
    }
    return expired;
  }

  // When expire() next has something to do, if anything is kept.
  std::optional<TimePoint> next_expiry() const {
    std::optional<TimePoint> next;
    for (const auto& queue : idle_)
      if (!queue.empty() && (!next || queue.front().expires < *next)) next = queue.front().expires;
    return next;
  }

  std::vector<T> clear() {
    std::vector<T> all;
    for (auto& queue : idle_) {
      for (auto& entry : queue) all.push_back(std::move(entry.item));
      queue.clear();
    }
    return all;
  }

  std::size_t size(std::size_t endpoint) const { return idle_.at(endpoint).size(); }
  std::size_t endpoints() const { return idle_.size(); }

 private:
  struct Entry {
    T item;
    TimePoint expires;
  };
  std::size_t max_per_endpoint_;
  Duration idle_timeout_;
  std::vector<std::deque<Entry>> idle_;
};

}  // namespace portrelay::relay
