// Graceful drain: on SIGTERM or POST /admin/drain the server takes no new
// calls (readiness and the agent check say so at once), lets the current
// calls run to their end or to --drain-timeout, then quits its main loop
// (the process exits 0). A second SIGTERM quits at once; the calls left are
// ended with close 1001.
#pragma once

#include <glib.h>

namespace ppserver {

class Server;

class Drain {
 public:
  Drain(Server *server, GMainLoop *loop, int timeout_s) : server_(server), loop_(loop), timeout_s_(timeout_s) {}
  ~Drain();
  Drain(const Drain &) = delete;
  Drain &operator=(const Drain &) = delete;

  // The first asks for a drain, a second for the end now.
  void begin(const char *why);

 private:
  static gboolean poll_cb(gpointer self);
  void finish(const char *how);

  Server *server_;
  GMainLoop *loop_;
  int timeout_s_;
  gint64 began_us_ = 0;
  guint poll_ = 0;
};

}  // namespace ppserver
