#include "portrelay/net/resolver.hpp"

#include <netdb.h>

#include <cstring>

#include "portrelay/net/dns_cache.hpp"
#include "portrelay/net/timer.hpp"

namespace portrelay::net {

struct Resolution::Request {
  uv_getaddrinfo_t request;
  Callback callback;
  std::string host;
  std::uint16_t port = 0;
  Resolution* owner = nullptr;  // cleared when either side goes first
};

std::unique_ptr<Resolution> Resolution::start(uv_loop_t* loop, const std::string& host,
                                              std::uint16_t port, Callback callback) {
  if (auto cached = DnsCache::shared().find(host, port, DnsCache::Clock::now())) {
    auto resolution = std::unique_ptr<Resolution>(new Resolution());
    resolution->cached_ = std::make_unique<Timer>(loop);
    resolution->cached_->start(std::chrono::milliseconds(0),
                               [callback = std::move(callback), addresses = std::move(*cached)]() {
                                 callback(0, addresses);
                               });
    return resolution;
  }
  auto* request = new Request{};
  request->host = host;
  request->port = port;
  request->callback = std::move(callback);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  std::string service = std::to_string(port);
  int rc = uv_getaddrinfo(
      loop, &request->request,
      [](uv_getaddrinfo_t* req, int status, addrinfo* result) {
        std::unique_ptr<Request> owned(reinterpret_cast<Request*>(req));
        std::vector<sockaddr_storage> addresses;
        for (addrinfo* entry = result; entry; entry = entry->ai_next) {
          if (entry->ai_family != AF_INET && entry->ai_family != AF_INET6) continue;
          sockaddr_storage address{};
          std::memcpy(&address, entry->ai_addr, entry->ai_addrlen);
          addresses.push_back(address);
        }
        uv_freeaddrinfo(result);
        if (status == 0 && addresses.empty()) status = UV_EAI_NONAME;
        auto ordered = interleave_families(addresses);
        // Even if nobody waits any more, the answer is good for the next attempt.
        if (status == 0)
          DnsCache::shared().store(owned->host, owned->port, ordered, DnsCache::Clock::now());
        if (!owned->owner) return;
        owned->owner->request_ = nullptr;
        owned->callback(status, std::move(ordered));
      },
      host.c_str(), service.c_str(), &hints);
  if (rc != 0) {
    // Report the failure asynchronously like every other outcome.
    auto failed = std::move(request->callback);
    delete request;
    failed(rc, {});
    return nullptr;
  }
  auto resolution = std::unique_ptr<Resolution>(new Resolution());
  resolution->request_ = request;
  request->owner = resolution.get();
  return resolution;
}

Resolution::~Resolution() {
  if (!request_) return;
  // The thread-pool job may already run; the request is freed by its callback either way.
  request_->owner = nullptr;
  request_->callback = nullptr;
  uv_cancel(reinterpret_cast<uv_req_t*>(&request_->request));
}

std::vector<sockaddr_storage> interleave_families(const std::vector<sockaddr_storage>& addresses) {
  if (addresses.empty()) return {};
  int first = addresses.front().ss_family;
  std::vector<sockaddr_storage> primary, secondary, result;
  for (const auto& address : addresses)
    (address.ss_family == first ? primary : secondary).push_back(address);
  for (std::size_t i = 0; i < std::max(primary.size(), secondary.size()); ++i) {
    if (i < primary.size()) result.push_back(primary[i]);
    if (i < secondary.size()) result.push_back(secondary[i]);
  }
  return result;
}

}  // namespace portrelay::net
