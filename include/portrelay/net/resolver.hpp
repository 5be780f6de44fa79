#pragma once
// Asynchronous host name resolution (uv_getaddrinfo on libuv's thread pool), with answers
// remembered for 60 seconds (DnsCache: getaddrinfo reports no TTL).
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace portrelay::net {

class Timer;

class Resolution {
 public:
  // Addresses in the order to try: IPv6 and IPv4 interleaved (RFC 8305 section 4),
  // starting with the family of the first answer.
  using Callback = std::function<void(int status, std::vector<sockaddr_storage> addresses)>;

  // The callback runs on the loop thread. Only if libuv refuses to start the lookup does
  // it run before start() returns (and start() then returns nullptr). A cached answer is
  // delivered on the next loop turn, like a fresh one.
  static std::unique_ptr<Resolution> start(uv_loop_t* loop, const std::string& host,
                                           std::uint16_t port, Callback callback);
  // Destroying a Resolution cancels it: the callback will not run.
  ~Resolution();

 private:
  struct Request;
  Resolution() = default;
  Request* request_ = nullptr;     // a getaddrinfo in flight
  std::unique_ptr<Timer> cached_;  // delivering a cached answer
};

// Reorders addresses so families alternate, keeping each family's order.
std::vector<sockaddr_storage> interleave_families(const std::vector<sockaddr_storage>& addresses);

}  // namespace portrelay::net
