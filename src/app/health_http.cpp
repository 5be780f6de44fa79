#include "health_http.hpp"

#include <CivetServer.h>
#include <civetweb.h>

#include <map>
#include <mutex>
#include <string_view>

namespace portrelay::health_http {
namespace {

std::mutex registry_mutex;
std::map<int, std::shared_ptr<const HealthStatus>>& registry() {
  static std::map<int, std::shared_ptr<const HealthStatus>> ports;
  return ports;
}

std::shared_ptr<const HealthStatus> status_for(int port) {
  std::lock_guard lock(registry_mutex);
  auto it = registry().find(port);
  return it == registry().end() ? nullptr : it->second;
}

const char* reason_phrase(int status) { return status == 200 ? "OK" : "Service Unavailable"; }

// civetweb's begin_request: 0 lets civetweb (the Exposer) handle the request; a status
// code says it was answered here.
int answer(mg_connection* connection) {
  const mg_request_info* request = mg_get_request_info(connection);
  if (!request || !request->local_uri) return 0;
  const std::string_view path = request->local_uri;
  const bool live = path == "/healthz";
  if (!live && path != "/readyz") return 0;
  auto status = status_for(request->server_port);
  if (!status) return 0;
  const auto now = HealthStatus::Clock::now();
  const HealthStatus::Answer reply = live ? status->liveness(now) : status->readiness(now);
  const std::string_view method = request->request_method ? request->request_method : "";
  mg_printf(connection,
            "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
            reply.status, reason_phrase(reply.status), reply.body.size());
  if (method != "HEAD") mg_write(connection, reply.body.data(), reply.body.size());
  return reply.status;
}

}  // namespace

const CivetCallbacks* callbacks() {
  static const CivetCallbacks hooks = [] {
    CivetCallbacks made;
    made.begin_request = answer;
    return made;
  }();
  return &hooks;
}

void register_port(int port, std::shared_ptr<const HealthStatus> status) {
  std::lock_guard lock(registry_mutex);
  registry()[port] = std::move(status);
}

void unregister_port(int port) {
  std::lock_guard lock(registry_mutex);
  registry().erase(port);
}

}  // namespace portrelay::health_http
