#pragma once
// Internal to the metrics layer (prometheus-cpp headers stay out of the public headers).
#include <prometheus/collectable.h>

namespace portrelay::metrics {

// The standard process_* series of this process, from /proc/self at collection time.
// Nothing is exported when /proc cannot be read.
class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace portrelay::metrics
