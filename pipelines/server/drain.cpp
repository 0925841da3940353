#include "drain.h"

#include "server.h"

namespace ppserver {

Drain::~Drain() {
  if (poll_) g_source_remove(poll_);
}

void Drain::begin(const char *why) {
  if (began_us_) {
    g_print("%s again: ending the %d calls left now\n", why, server_->slots_in_use());
    finish("Drain cut short");
    return;
  }
  began_us_ = g_get_monotonic_time();
  server_->set_draining();
  g_print("Draining (%s): no new calls; %d to finish, at most %d s\n", why, server_->slots_in_use(), timeout_s_);
  poll_ = g_timeout_add(100, poll_cb, this);
}

gboolean Drain::poll_cb(gpointer data) {
  Drain *self = static_cast<Drain *>(data);
  if (self->server_->slots_in_use() == 0) {
    self->poll_ = 0;
    self->finish("Drained");
    return G_SOURCE_REMOVE;
  }
  if (g_get_monotonic_time() - self->began_us_ > gint64(self->timeout_s_) * G_USEC_PER_SEC) {
    g_print("Drain timeout: ending the %d calls left\n", self->server_->slots_in_use());
    self->poll_ = 0;
    self->finish("Drain timed out");
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

void Drain::finish(const char *how) {
  g_print("%s after %.1f s\n", how, (g_get_monotonic_time() - began_us_) / 1e6);
  g_main_loop_quit(loop_);
}

}  // namespace ppserver
