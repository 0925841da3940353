// The server's side of health, capacity and metrics: whether calls work,
// why a call is refused, what /metrics says.
#include <glib.h>

#include "server.h"

#ifndef PERSONAPLEX_VERSION
#define PERSONAPLEX_VERSION "unknown"
#endif

namespace ppserver {
namespace {

// Calls whose model fails one after another (a lost GPU, a broken driver)
// mean the next will fail too; one good call clears it.
constexpr int kFailuresForDown = 3;

std::string base_name(const std::string &path) {
  gchar *b = g_path_get_basename(path.c_str());
  std::string out = b;
  g_free(b);
  return out;
}

}  // namespace

std::string Server::refusal() const {
  if (draining_) return "draining: this server takes no new calls, try again later";
  const int n = config_.max_sessions;
  return "busy: all " + std::to_string(n) + " conversation" + (n == 1 ? " is" : "s are") + " in use";
}

bool Server::healthy() const { return !shutting_down_ && failed_in_a_row_ < kFailuresForDown; }

std::string Server::health_problem() const {
  if (shutting_down_) return "shutting down";
  if (failed_in_a_row_ >= kFailuresForDown)
    return std::to_string(failed_in_a_row_) + " calls in a row failed in the model: " + last_failure_;
  return "";
}

void Server::call_outcome(bool ok, const std::string &error) {
  if (ok) {
    failed_in_a_row_ = 0;
    return;
  }
  ++failed_in_a_row_;
  last_failure_ = error.substr(0, 200);
}

bool Server::request_drain() {
  if (!drain_handler_) return false;
  drain_handler_();
  return true;
}

std::string Server::metrics_text() const {
  Metrics::Now now;
  now.active = slots_in_use_;
  now.max_sessions = config_.max_sessions;
  now.draining = draining_;
  now.healthy = healthy();
  now.version = PERSONAPLEX_VERSION;
  now.model = base_name(config_.model.model_dir.empty() ? config_.model.lm_weights : config_.model.model_dir);
  now.device = config_.model.device;
  return metrics_.render(now);
}

// Batched calls step together; unbatched ones each alone.
gboolean Server::sample_batch_cb(gpointer data) {
  Server *self = static_cast<Server *>(data);
  if (self->calls_playing_ <= 0) return G_SOURCE_CONTINUE;
  if (self->config_.batch)
    self->metrics_.batch(self->calls_playing_);
  else
    for (int i = 0; i < self->calls_playing_; ++i) self->metrics_.batch(1);
  return G_SOURCE_CONTINUE;
}

}  // namespace ppserver
