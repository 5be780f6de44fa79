#pragma once
// IPv4/IPv6 networks in CIDR notation, for the client allow-list.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

struct sockaddr;

namespace portrelay::net {

class Cidr {
 public:
  // "127.0.0.0/8", "::1/128", "10.1.2.3" (host route). nullopt if malformed.
  static std::optional<Cidr> parse(std::string_view text);
  // True if the socket address (AF_INET or AF_INET6) is inside the network.
  // IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are matched against IPv4 networks.
  bool contains(const sockaddr* address) const;
  std::string str() const;
  unsigned prefix_length() const { return prefix_; }  // 0 matches every address of its family
  bool is_v6() const { return v6_; }
  // Network address, host bits cleared: 4 bytes used for IPv4, 16 for IPv6.
  const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }

 private:
  bool v6_ = false;
  std::array<std::uint8_t, 16> bytes_{};
  unsigned prefix_ = 0;
  bool matches(const std::uint8_t* address, bool v6) const;
};

}  // namespace portrelay::net
