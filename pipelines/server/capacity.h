// What the server can take now, in the two forms a balancer reads: the
// /readyz answer (HTTP status and a line of text) and the HAProxy agent
// check's answer (agent_check.h).
//
//   state     /readyz                      agent check
//   free      200 "ready: F of N free"     "up ready P%"  (P = share of slots free)
//   full      503 "full: N of N in use"    "up drain"     (no new calls; current ones go on)
//   draining  503 "draining: ..."          "drain"
//   unhealthy 503 "down: why"              "down"
#pragma once

#include <string>

namespace ppserver {

class Server;

struct Capacity {
  enum class State { kFree, kFull, kDraining, kDown } state;
  int free = 0, max = 0;
  std::string why;  // for kDown
};

Capacity capacity_of(const Server &server);
// /readyz: 200 when a call can start here, 503 otherwise; `text` says why.
unsigned readiness(const Capacity &c, std::string *text);
// The agent check's line, newline included.
std::string agent_answer(const Capacity &c);

}  // namespace ppserver
