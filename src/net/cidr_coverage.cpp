#include "portrelay/net/cidr_coverage.hpp"

#include <array>
#include <cstdint>
#include <cstring>

namespace portrelay::net {
namespace {

// A network reduced to the address space being checked (32 bits for IPv4, 128 for IPv6).
struct Prefix {
  std::array<std::uint8_t, 16> bits{};
  unsigned length = 0;
};

bool bit(const std::array<std::uint8_t, 16>& bytes, unsigned index) {
  return (bytes[index / 8] >> (7 - index % 8)) & 1u;
}

void set_bit(std::array<std::uint8_t, 16>& bytes, unsigned index, bool value) {
  const auto mask = static_cast<std::uint8_t>(0x80u >> (index % 8));
  if (value) {
    bytes[index / 8] |= mask;
  } else {
    bytes[index / 8] &= static_cast<std::uint8_t>(~mask);
  }
}

// The first `length` bits of `a` and `b` are equal.
bool same_prefix(const std::array<std::uint8_t, 16>& a, const std::array<std::uint8_t, 16>& b,
                 unsigned length) {
  for (unsigned i = 0; i < length; ++i)
    if (bit(a, i) != bit(b, i)) return false;
  return true;
}

// Whether the networks cover the whole block `node`/`depth`. A network either contains the
// block, lies inside it, or is disjoint from it; only blocks with a network strictly inside
// are split, so at most (networks x address bits) blocks are visited.
bool covers(const std::vector<Prefix>& networks, std::array<std::uint8_t, 16> node,
            unsigned depth) {
  bool split = false;
  for (const Prefix& network : networks) {
    if (network.length <= depth) {
      if (same_prefix(network.bits, node, network.length)) return true;
    } else if (same_prefix(network.bits, node, depth)) {
      split = true;
    }
  }
  if (!split) return false;
  set_bit(node, depth, false);
  if (!covers(networks, node, depth + 1)) return false;
  set_bit(node, depth, true);
  return covers(networks, node, depth + 1);
}

constexpr std::uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

bool covers_all_ipv4(const std::vector<Cidr>& networks) {
  std::array<std::uint8_t, 16> mapped{};
  std::memcpy(mapped.data(), kV4MappedPrefix, sizeof kV4MappedPrefix);
  std::vector<Prefix> v4;
  for (const Cidr& network : networks) {
    if (!network.is_v6()) {
      v4.push_back({network.bytes(), network.prefix_length()});
      continue;
    }
    // The part of an IPv6 network inside ::ffff:0:0/96, as an IPv4 network.
    const unsigned length = network.prefix_length();
    if (length <= 96) {
      if (same_prefix(network.bytes(), mapped, length)) v4.push_back({{}, 0});
    } else if (same_prefix(network.bytes(), mapped, 96)) {
      Prefix prefix;
      std::memcpy(prefix.bits.data(), network.bytes().data() + 12, 4);
      prefix.length = length - 96;
      v4.push_back(prefix);
    }
  }
  return covers(v4, {}, 0);
}

bool covers_all_ipv6(const std::vector<Cidr>& networks) {
  std::vector<Prefix> v6;
  for (const Cidr& network : networks)
    if (network.is_v6()) v6.push_back({network.bytes(), network.prefix_length()});
  return covers(v6, {}, 0);
}

}  // namespace portrelay::net
