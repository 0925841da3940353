#include "capacity.h"

#include <algorithm>

#include "server.h"

namespace ppserver {

Capacity capacity_of(const Server &server) {
  Capacity c;
  c.max = server.config().max_sessions;
  c.free = c.max - server.slots_in_use();
  if (!server.healthy()) {
    c.state = Capacity::State::kDown;
    c.why = server.health_problem();
  } else if (server.draining()) {
    c.state = Capacity::State::kDraining;
  } else {
    c.state = c.free > 0 ? Capacity::State::kFree : Capacity::State::kFull;
  }
  return c;
}

unsigned readiness(const Capacity &c, std::string *text) {
  const std::string counts = std::to_string(c.max - c.free) + " of " + std::to_string(c.max) + " in use";
  switch (c.state) {
    case Capacity::State::kFree:
      *text = "ready: " + std::to_string(c.free) + " of " + std::to_string(c.max) + " free";
      return 200;
    case Capacity::State::kFull:
      *text = "full: " + counts;
      return 503;
    case Capacity::State::kDraining:
      *text = "draining: no new calls, " + counts;
      return 503;
    case Capacity::State::kDown:
      *text = "down: " + c.why;
      return 503;
  }
  return 503;
}

std::string agent_answer(const Capacity &c) {
  switch (c.state) {
    case Capacity::State::kFree: {
      // HAProxy scales the server's weight by this; leastconn then prefers
      // the instance with the most room.
      const int percent = std::max(1, 100 * c.free / c.max);
      return "up ready " + std::to_string(percent) + "%\n";
    }
    case Capacity::State::kFull:
      return "up drain\n";
    case Capacity::State::kDraining:
      return "drain\n";
    case Capacity::State::kDown:
      return "down\n";
  }
  return "down\n";
}

}  // namespace ppserver
