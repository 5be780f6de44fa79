// process_* as a prometheus-cpp Collectable: read at each scrape, not sampled by a timer,
// so the numbers are as fresh as the scrape and cost nothing between scrapes.
#include "process_collector.hpp"

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>

#include "portrelay/metrics/process_stats.hpp"

namespace portrelay::metrics {
namespace {

prometheus::MetricFamily family(const char* name, const char* help, prometheus::MetricType type,
                                double value) {
  prometheus::ClientMetric sample;
  if (type == prometheus::MetricType::Counter)
    sample.counter.value = value;
  else
    sample.gauge.value = value;
  return {name, help, type, {sample}};
}

}  // namespace

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  const auto stats = read_process_stats();
  if (!stats) return {};
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  out.push_back(family("process_cpu_seconds_total",
                       "Total user and system CPU time spent in seconds.", MetricType::Counter,
                       stats->cpu_seconds));
  out.push_back(family("process_resident_memory_bytes", "Resident memory size in bytes.",
                       MetricType::Gauge, stats->resident_bytes));
  out.push_back(family("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                       MetricType::Gauge, stats->virtual_bytes));
  out.push_back(family("process_open_fds", "Number of open file descriptors.", MetricType::Gauge,
                       stats->open_fds));
  if (stats->max_fds > 0)
    out.push_back(family("process_max_fds", "Maximum number of open file descriptors.",
                         MetricType::Gauge, stats->max_fds));
  out.push_back(family("process_start_time_seconds",
                       "Start time of the process since unix epoch in seconds.", MetricType::Gauge,
                       stats->start_time_seconds));
  return out;
}

}  // namespace portrelay::metrics
