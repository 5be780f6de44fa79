#include "portrelay/log.hpp"
#include "portrelay/net/timer.hpp"
#include "portrelay/relay/upstream_selector.hpp"

namespace portrelay::relay {

class SequentialSelector::Attempt : public SelectionAttempt {
 public:
  Attempt(SequentialSelector& selector, std::set<std::size_t> exclude, Callback callback)
      : selector_(selector),
        exclude_(std::move(exclude)),
        callback_(std::move(callback)),
        kickoff_(selector.loop_) {
    // Defer so select() never calls back re-entrantly.
    kickoff_.start(std::chrono::milliseconds(0), [this]() { try_next(); });
  }

 private:
  void try_next() {
    const auto& endpoints = selector_.endpoints_;
    while (next_ < endpoints.size() && exclude_.count(next_)) ++next_;
    if (next_ >= endpoints.size()) return finish();
    const EndpointRuntime& runtime = endpoints[next_++];
    if (previous_failed_) selector_.metrics_.failover(previous_failed_->endpoint, runtime.endpoint);
    selector_.metrics_.connect_attempt(runtime.endpoint);
    current_ = std::make_unique<UpstreamConnection>(selector_.loop_, runtime, selector_.timeouts_,
                                                    selector_.helo_name_);
    current_->connect([this, &runtime](std::optional<AttemptFailure> failure) {
      if (!failure) {
        auto seconds = std::chrono::duration<double>(current_->ready_after()).count();
        selector_.metrics_.connect_success(runtime.endpoint, seconds);
        selection_.connection = std::move(current_);
        return finish();
      }
      selector_.metrics_.connect_failure(runtime.endpoint, failure->reason);
      log::warn("upstream_failed", {{"endpoint", runtime.endpoint.label()},
                                    {"reason", to_string(failure->reason)},
                                    {"detail", failure->detail}});
      selection_.failures.push_back({runtime.endpoint.index, *failure});
      previous_failed_ = &runtime;
      // Destroying the connection from inside its own callback is unsafe: defer.
      retired_ = std::move(current_);
      kickoff_.start(std::chrono::milliseconds(0), [this]() {
        retired_.reset();
        try_next();
      });
    });
  }

  void finish() {
    auto callback = std::move(callback_);
    callback_ = nullptr;
    if (callback) callback(std::move(selection_));  // may destroy this Attempt
  }

  SequentialSelector& selector_;
  std::set<std::size_t> exclude_;
  Callback callback_;
  net::Timer kickoff_;
  std::size_t next_ = 0;
  std::unique_ptr<UpstreamConnection> current_;
  std::unique_ptr<UpstreamConnection> retired_;
  const EndpointRuntime* previous_failed_ = nullptr;
  Selection selection_;
};

SequentialSelector::SequentialSelector(uv_loop_t* loop, std::vector<EndpointRuntime> endpoints,
                                       UpstreamTimeouts timeouts, std::string helo_name,
                                       metrics::Metrics& metrics)
    : loop_(loop),
      endpoints_(std::move(endpoints)),
      timeouts_(timeouts),
      helo_name_(std::move(helo_name)),
      metrics_(metrics) {}

std::unique_ptr<SelectionAttempt> SequentialSelector::select(const std::set<std::size_t>& exclude,
                                                             Callback callback) {
  return std::make_unique<Attempt>(*this, exclude, std::move(callback));
}

}  // namespace portrelay::relay
