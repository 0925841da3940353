// The endpoints for operators and balancers:
//   GET  /healthz      200 "ok" while the model is loaded and calls work, else 503 and why
//   GET  /readyz       200 when a new call can start here, else 503 (full, draining, down)
//   GET  /metrics      Prometheus text (metrics.h)
//   POST /admin/drain  from this machine only: drain and exit (drain.h)
#pragma once

#include <libsoup/soup.h>

namespace ppserver {

class Server;

void add_operator_endpoints(Server *server, SoupServer *soup);

}  // namespace ppserver
