#include "metrics_http_server.hpp"

#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

#include "portrelay/net/tcp_listener.hpp"

namespace portrelay {
namespace {

// What prometheus-cpp's Exposer answered for /metrics too (Prometheus takes text/plain as
// its text format).
constexpr const char* kTextContentType = "text/plain; charset=utf-8";
constexpr std::size_t kRequestMemory = 16 * 1024;
constexpr unsigned kMaxConnections = 4096;
constexpr int kListenBacklog = 1024;

// A quarter of the descriptors the process may open, at most kMaxConnections: a flood
// of connections to the metrics port leaves the SMTP side three quarters.
unsigned connection_limit_for_this_process() {
  rlimit limit{};
  rlim_t descriptors = 1024;
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
    descriptors = limit.rlim_cur;
  else if (limit.rlim_cur == RLIM_INFINITY)
    descriptors = kMaxConnections * 4;
  return static_cast<unsigned>(
      std::clamp<rlim_t>(descriptors / 4, 16, static_cast<rlim_t>(kMaxConnections)));
}

MHD_Result answer(MHD_Connection* connection, unsigned status, const std::string& body,
                  const char* content_type, bool close) {
  MHD_Response* response = MHD_create_response_from_buffer(
      body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  if (!response) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (close) MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  const MHD_Result queued = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return queued;
}

int open_listener(const config::ListenAddress& listen, std::uint16_t& port) {
  const std::string where = listen.str();
  sockaddr_storage address{};
  if (!net::make_sockaddr(listen.host, listen.port, address))
    throw std::runtime_error("cannot serve metrics on " + where + ": not an IP address");
  const int fd = ::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    const int error = errno;
    throw std::runtime_error("cannot serve metrics on " + where + ": " + std::strerror(error));
  }
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  const socklen_t length =
      address.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), length) != 0 ||
      ::listen(fd, kListenBacklog) != 0) {
    const int error = errno;
    ::close(fd);
    throw std::runtime_error("cannot serve metrics on " + where + ": " + std::strerror(error));
  }
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length);
  port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return fd;
}

}  // namespace

// libmicrohttpd calls this once the request line and headers are complete (and again for
// each piece of a request body, which these paths ignore). On the server's own thread.
static MHD_Result handle_request(void* context, MHD_Connection* connection, const char* url,
                                 const char* method, const char* /*version*/,
                                 const char* /*upload_data*/, std::size_t* upload_data_size,
                                 void** /*request_state*/) {
  auto& server = *static_cast<MetricsHttpServer*>(context);
  *upload_data_size = 0;  // a body, if any, is not read
  const std::string_view path = url ? url : "";
  const std::string_view verb = method ? method : "";
  const bool metrics = path == "/metrics";
  const bool live = path == "/healthz";
  if (!metrics && !live && path != "/readyz")
    return answer(connection, MHD_HTTP_NOT_FOUND, "not found\n", kTextContentType, false);
  if (verb != MHD_HTTP_METHOD_GET && verb != MHD_HTTP_METHOD_HEAD)
    return answer(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET or HEAD\n", kTextContentType,
                  true);
  if (metrics)
    return answer(connection, MHD_HTTP_OK, server.metrics().serialize(), kTextContentType, false);
  const auto now = HealthStatus::Clock::now();
  const HealthStatus::Answer reply =
      live ? server.health().liveness(now) : server.health().readiness(now);
  return answer(connection, static_cast<unsigned>(reply.status), reply.body, kTextContentType,
                true);
}

MetricsHttpServer::MetricsHttpServer(const config::ListenAddress& listen,
                                     const metrics::Metrics& metrics,
                                     std::shared_ptr<const HealthStatus> health)
    : metrics_(metrics), health_(std::move(health)) {
  const int fd = open_listener(listen, port_);
  connection_limit_ = connection_limit_for_this_process();
  daemon_ = MHD_start_daemon(
      MHD_USE_EPOLL_INTERNAL_THREAD, 0, nullptr, nullptr, &handle_request, this,
      MHD_OPTION_LISTEN_SOCKET, static_cast<MHD_socket>(fd), MHD_OPTION_CONNECTION_TIMEOUT,
      static_cast<unsigned int>(kIdleTimeout.count()), MHD_OPTION_CONNECTION_LIMIT,
      static_cast<unsigned int>(connection_limit_), MHD_OPTION_PER_IP_CONNECTION_LIMIT,
      static_cast<unsigned int>(std::max(connection_limit_ / 4, 4u)),
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<std::size_t>(kRequestMemory), MHD_OPTION_END);
  if (!daemon_) {
    ::close(fd);
    throw std::runtime_error("cannot serve metrics on " + listen.str() +
                             ": libmicrohttpd did not start");
  }
}

MetricsHttpServer::~MetricsHttpServer() {
  // Joins the server's thread and closes every connection and the listening socket.
  MHD_stop_daemon(daemon_);
}

}  // namespace portrelay
