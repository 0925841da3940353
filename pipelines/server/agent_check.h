// An HAProxy agent-check port (--agent-port): each connection gets one
// line saying what the server can take (capacity.h) and is closed. HAProxy
// scales the instance's weight by it, stops sending it calls when it is
// full or draining, and marks it down when it is unhealthy.
#pragma once

#include <gio/gio.h>

#include <string>

namespace ppserver {

class Server;

class AgentCheck {
 public:
  explicit AgentCheck(Server *server) : server_(server) {}
  ~AgentCheck();
  AgentCheck(const AgentCheck &) = delete;
  AgentCheck &operator=(const AgentCheck &) = delete;

  // Listens on `host`:`port`; false with `error` set when it cannot.
  bool start(const std::string &host, int port, std::string *error);

 private:
  static gboolean incoming_cb(GSocketService *, GSocketConnection *connection, GObject *, gpointer self);

  Server *server_;
  GSocketService *service_ = nullptr;
};

}  // namespace ppserver
