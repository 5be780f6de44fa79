#pragma once
// Whether a set of allow-list networks, taken together, admits every client of an address
// family. The open-relay guard needs the union, not single entries: "0.0.0.0/1" plus
// "128.0.0.0/1" admits all of IPv4, and so does "::ffff:0.0.0.0/96", because Cidr::contains
// matches IPv4 clients against IPv6 networks in their mapped form (::ffff:a.b.c.d).
#include <vector>

#include "portrelay/net/cidr.hpp"

namespace portrelay::net {

// True if every IPv4 client (seen as a.b.c.d or as ::ffff:a.b.c.d) is inside some network.
bool covers_all_ipv4(const std::vector<Cidr>& networks);
// True if every IPv6 address is inside some IPv6 network.
bool covers_all_ipv6(const std::vector<Cidr>& networks);

}  // namespace portrelay::net
