// libFuzzer target: CIDR parsing and the open-relay coverage check. A parsed network prints
// in a form that parses to itself; it contains its own network address; coverage of a set
// never shrinks when a network is added.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "portrelay/net/cidr.hpp"
#include "portrelay/net/cidr_coverage.hpp"

using portrelay::net::Cidr;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<Cidr> networks;
  std::size_t start = 0;
  while (start <= input.size() && networks.size() < 16) {
    std::size_t end = input.find(',', start);
    if (end == std::string_view::npos) end = input.size();
    auto network = Cidr::parse(input.substr(start, end - start));
    if (network) {
      auto again = Cidr::parse(network->str());
      if (!again || again->str() != network->str()) std::abort();
      sockaddr_storage address{};
      if (network->is_v6()) {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
        in6->sin6_family = AF_INET6;
        std::memcpy(&in6->sin6_addr, network->bytes().data(), 16);
      } else {
        auto* in = reinterpret_cast<sockaddr_in*>(&address);
        in->sin_family = AF_INET;
        std::memcpy(&in->sin_addr, network->bytes().data(), 4);
      }
      if (!network->contains(reinterpret_cast<sockaddr*>(&address))) std::abort();
      const bool v4_before = portrelay::net::covers_all_ipv4(networks);
      const bool v6_before = portrelay::net::covers_all_ipv6(networks);
      networks.push_back(*network);
      if (v4_before && !portrelay::net::covers_all_ipv4(networks)) std::abort();
      if (v6_before && !portrelay::net::covers_all_ipv6(networks)) std::abort();
    }
    start = end + 1;
  }
  return 0;
}
