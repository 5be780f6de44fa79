#include "portrelay/net/cidr.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

namespace {

using portrelay::net::Cidr;

// An AF_INET or AF_INET6 socket address for an IP literal, as a listener would report it.
struct SocketAddress {
  sockaddr_storage storage{};
  explicit SocketAddress(const std::string& ip) {
    if (ip.find(':') != std::string::npos) {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
      in6->sin6_family = AF_INET6;
      EXPECT_EQ(inet_pton(AF_INET6, ip.c_str(), &in6->sin6_addr), 1) << ip;
    } else {
      auto* in = reinterpret_cast<sockaddr_in*>(&storage);
      in->sin_family = AF_INET;
      EXPECT_EQ(inet_pton(AF_INET, ip.c_str(), &in->sin_addr), 1) << ip;
    }
  }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

bool contains(const std::string& network, const std::string& ip) {
  const auto cidr = Cidr::parse(network);
  EXPECT_TRUE(cidr.has_value()) << network;
  return cidr && cidr->contains(SocketAddress(ip).get());
}

TEST(CidrParse, CanonicalFormRoundTrips) {
  EXPECT_EQ(Cidr::parse("127.0.0.0/8")->str(), "127.0.0.0/8");
  EXPECT_EQ(Cidr::parse("::1/128")->str(), "::1/128");
  EXPECT_EQ(Cidr::parse("fd00::/8")->str(), "fd00::/8");
  EXPECT_EQ(Cidr::parse("0.0.0.0/0")->str(), "0.0.0.0/0");
  EXPECT_EQ(Cidr::parse("0:0:0:0:0:0:0:1/128")->str(), "::1/128");
}

TEST(CidrParse, BareAddressIsAHostRoute) {
  EXPECT_EQ(Cidr::parse("10.1.2.3")->str(), "10.1.2.3/32");
  EXPECT_EQ(Cidr::parse("10.1.2.3")->prefix_length(), 32u);
  EXPECT_EQ(Cidr::parse("2001:db8::1")->str(), "2001:db8::1/128");
}

TEST(CidrParse, HostBitsBeyondThePrefixAreCleared) {
  EXPECT_EQ(Cidr::parse("10.1.2.3/8")->str(), "10.0.0.0/8");
  EXPECT_EQ(Cidr::parse("192.168.1.255/23")->str(), "192.168.0.0/23");
  EXPECT_EQ(Cidr::parse("2001:db8:ffff::1/33")->str(), "2001:db8:8000::/33");
}

TEST(CidrParse, PrefixBounds) {
  EXPECT_TRUE(Cidr::parse("10.0.0.0/32"));
  EXPECT_FALSE(Cidr::parse("10.0.0.0/33"));
  EXPECT_TRUE(Cidr::parse("::/128"));
  EXPECT_FALSE(Cidr::parse("::/129"));
  EXPECT_FALSE(Cidr::parse("10.0.0.0/4294967304"));  // would wrap to 8 in 32 bits
}

TEST(CidrParse, RejectsMalformed) {
  for (const char* text : {"", "/8", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8 ",
                           " 10.0.0.0/8", "10.0.0/8", "10.0.0.256/8", "010.0.0.1", "localhost",
                           "fe80::1%eth0/64", "10.0.0.0/8/8", "::1/1a", "[::1]/128"}) {
    EXPECT_FALSE(Cidr::parse(text)) << '"' << text << '"';
  }
}

TEST(CidrContains, Ipv4) {
  EXPECT_TRUE(contains("127.0.0.0/8", "127.0.0.1"));
  EXPECT_TRUE(contains("127.0.0.0/8", "127.255.255.255"));
  EXPECT_FALSE(contains("127.0.0.0/8", "128.0.0.1"));
  EXPECT_TRUE(contains("192.168.0.0/23", "192.168.1.7"));
  EXPECT_FALSE(contains("192.168.0.0/23", "192.168.2.7"));
  EXPECT_TRUE(contains("10.1.2.3", "10.1.2.3"));
  EXPECT_FALSE(contains("10.1.2.3", "10.1.2.4"));
  EXPECT_TRUE(contains("0.0.0.0/0", "203.0.113.9"));
}

TEST(CidrContains, Ipv6) {
  EXPECT_TRUE(contains("::1/128", "::1"));
  EXPECT_FALSE(contains("::1/128", "::2"));
  EXPECT_TRUE(contains("fd00::/8", "fd12:3456::1"));
  EXPECT_FALSE(contains("fd00::/8", "fe80::1"));
  EXPECT_TRUE(contains("2001:db8:8000::/33", "2001:db8:8000::1"));
  EXPECT_FALSE(contains("2001:db8:8000::/33", "2001:db8:7fff::1"));
}

TEST(CidrContains, FamiliesDoNotMixExceptMappedAddresses) {
  EXPECT_FALSE(contains("127.0.0.0/8", "::1"));
  EXPECT_FALSE(contains("::1/128", "127.0.0.1"));
  EXPECT_FALSE(contains("0.0.0.0/0", "2001:db8::1"));
}

// A client matches the same networks whether the listener reports it as 10.0.0.1 (IPv4
// socket) or as ::ffff:10.0.0.1 (dual-stack socket).
TEST(CidrContains, ResultDoesNotDependOnHowTheListenerReportsAnIpv4Client) {
  for (const char* network : {"::/0", "::ffff:0:0/96", "10.0.0.0/8", "::1/128", "fd00::/8"}) {
    EXPECT_EQ(contains(network, "10.0.0.1"), contains(network, "::ffff:10.0.0.1")) << network;
  }
  EXPECT_TRUE(contains("::/0", "10.0.0.1"));
}

TEST(CidrContains, Ipv4MappedIpv6ClientMatchesIpv4Network) {
  EXPECT_TRUE(contains("127.0.0.0/8", "::ffff:127.0.0.1"));
  EXPECT_TRUE(contains("10.0.0.0/8", "::ffff:10.20.30.40"));
  EXPECT_FALSE(contains("10.0.0.0/8", "::ffff:11.0.0.1"));
  // Same low 32 bits but not the ::ffff: prefix: not an IPv4 client.
  EXPECT_FALSE(contains("10.0.0.0/8", "::10.0.0.1"));
  EXPECT_FALSE(contains("10.0.0.0/8", "64:ff9b::10.0.0.1"));
}

TEST(CidrContains, Ipv4ClientMatchesMappedIpv6Network) {
  EXPECT_TRUE(contains("::ffff:10.0.0.0/104", "10.9.9.9"));
  EXPECT_FALSE(contains("::ffff:10.0.0.0/104", "11.0.0.1"));
}

TEST(CidrContains, OtherFamiliesAndNullAreOutside) {
  const auto any = Cidr::parse("0.0.0.0/0");
  sockaddr_storage unix_address{};
  unix_address.ss_family = AF_UNIX;
  EXPECT_FALSE(any->contains(reinterpret_cast<const sockaddr*>(&unix_address)));
  EXPECT_FALSE(any->contains(nullptr));
}

}  // namespace
