#include "portrelay/net/cidr.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <cstring>

namespace portrelay::net {
namespace {

constexpr std::uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_v4_mapped(const std::uint8_t* v6) {
  return std::memcmp(v6, kV4MappedPrefix, sizeof kV4MappedPrefix) == 0;
}

// Clears every bit after the first `prefix` bits.
void mask_host_bits(std::uint8_t* bytes, std::size_t size, unsigned prefix) {
  for (std::size_t i = 0; i < size; ++i) {
    const unsigned first_bit = static_cast<unsigned>(i) * 8;
    if (prefix >= first_bit + 8) continue;
    const unsigned kept = prefix > first_bit ? prefix - first_bit : 0;
    bytes[i] &= static_cast<std::uint8_t>(0xff00u >> kept);
  }
}

bool prefix_equal(const std::uint8_t* a, const std::uint8_t* b, unsigned prefix) {
  const unsigned whole = prefix / 8;
  if (std::memcmp(a, b, whole) != 0) return false;
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff00u >> rest);
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

// Host bits beyond the prefix are accepted and cleared ("10.1.2.3/8" is 10.0.0.0/8): the
// prefix length is what defines the network, as in most routers' configuration syntax.
std::optional<Cidr> Cidr::parse(std::string_view text) {
  const auto slash = text.find('/');
  const std::string address(text.substr(0, slash));
  if (address.empty()) return std::nullopt;

  Cidr cidr;
  if (address.find(':') != std::string::npos) {
    if (inet_pton(AF_INET6, address.c_str(), cidr.bytes_.data()) != 1) return std::nullopt;
    cidr.v6_ = true;
  } else {
    if (inet_pton(AF_INET, address.c_str(), cidr.bytes_.data()) != 1) return std::nullopt;
  }
  const unsigned max_prefix = cidr.v6_ ? 128 : 32;

  cidr.prefix_ = max_prefix;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    // from_chars would accept "+8" on some libraries and leading whitespace nowhere; be explicit.
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
    }
    unsigned prefix = 0;
    std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (prefix > max_prefix) return std::nullopt;
    cidr.prefix_ = prefix;
  }
  mask_host_bits(cidr.bytes_.data(), cidr.v6_ ? 16 : 4, cidr.prefix_);
  return cidr;
}

bool Cidr::contains(const sockaddr* address) const {
  if (address == nullptr) return false;
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    return matches(reinterpret_cast<const std::uint8_t*>(&in->sin_addr), false);
  }
  if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    return matches(reinterpret_cast<const std::uint8_t*>(&in6->sin6_addr), true);
  }
  return false;
}

bool Cidr::matches(const std::uint8_t* address, bool v6) const {
  if (v6 == v6_) return prefix_equal(address, bytes_.data(), prefix_);
  if (v6) {
    // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
    return is_v4_mapped(address) && prefix_equal(address + 12, bytes_.data(), prefix_);
  }
  // IPv4 client checked against an IPv6 network: compare in mapped form.
  std::uint8_t mapped[16];
  std::memcpy(mapped, kV4MappedPrefix, sizeof kV4MappedPrefix);
  std::memcpy(mapped + 12, address, 4);
  return prefix_equal(mapped, bytes_.data(), prefix_);
}

std::string Cidr::str() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6_ ? AF_INET6 : AF_INET, bytes_.data(), buffer, sizeof buffer);
  return std::string(buffer) + "/" + std::to_string(prefix_);
}

}  // namespace portrelay::net
