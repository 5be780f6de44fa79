#pragma once
// /healthz and /readyz on the metrics listener. prometheus::Exposer serves only
// Collectables (always 200), but it takes civetweb callbacks: `begin_request` sees every
// request first and may answer it itself. That keeps one port, one HTTP server and no
// hand-written HTTP parsing. The callback is a plain function pointer with no context of
// its own, so the HealthStatus is found by the port the request came in on.
#include <memory>

#include "portrelay/app/health_status.hpp"

struct CivetCallbacks;

namespace portrelay::health_http {

// Callbacks that answer GET/HEAD /healthz and /readyz for every port register()ed, and
// leave every other request to the Exposer. Lives as long as the process.
const CivetCallbacks* callbacks();

// Requests to `port` are answered from `status` until unregister(port).
void register_port(int port, std::shared_ptr<const HealthStatus> status);
void unregister_port(int port);

}  // namespace portrelay::health_http
