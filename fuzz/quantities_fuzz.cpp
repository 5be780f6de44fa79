// libFuzzer target: durations, sizes and listen addresses from the configuration. Whatever
// parses prints back in a form that parses to the same value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "portrelay/config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace portrelay::config;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto duration = parse_duration(input)) {
    if (duration->count() < 0) std::abort();
    auto again = parse_duration(format_duration(*duration));
    if (!again || *again != *duration) std::abort();
  }
  (void)parse_size(input);
  if (auto address = parse_listen_address(input)) {
    auto again = parse_listen_address(address->str());
    if (!again || again->str() != address->str() || again->port != address->port) std::abort();
  }
  return 0;
}
