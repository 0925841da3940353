#include "main_loop_lag.h"

#include <glib.h>

#include <cstdlib>
#include <cstring>

namespace ppserver {

namespace {

constexpr guint kPeriodMs = 10;
constexpr gint64 kReportUs = 30000;

gboolean check(gpointer data) {
  gint64 *due = static_cast<gint64 *>(data);
  const gint64 now = g_get_monotonic_time();
  if (now - *due > kReportUs)
    g_print("main loop woke %.1f ms late at %.3f s\n", (now - *due) / 1000.0, now / 1e6);
  *due = now + kPeriodMs * 1000;
  return G_SOURCE_CONTINUE;
}

}  // namespace

void watch_main_loop_lag() {
  const char *env = std::getenv("PERSONAPLEX_STALL_LOG");
  if (!env || std::strcmp(env, "1") != 0) return;
  gint64 *due = g_new(gint64, 1);
  *due = g_get_monotonic_time() + kPeriodMs * 1000;
  g_timeout_add_full(G_PRIORITY_DEFAULT, kPeriodMs, check, due, g_free);
}

}  // namespace ppserver
