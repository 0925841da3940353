// personaplex-server: live PersonaPlex conversations in the browser (WebRTC)
// and over the reference's websocket protocol, all on one loaded model.
#include <glib-unix.h>
#include <gst/gst.h>

#include <csignal>
#include <cstdio>

#include "agent_check.h"
#include "config.h"
#include "drain.h"
#include "main_loop_lag.h"
#include "model_keeper.h"
#include "server.h"

namespace {

// A call's graph is a loop through webrtcbin (the browser's audio comes out
// of it, the reply goes back in), which GstBin warns about at every state
// change. personaplex's own task breaks the loop for the data, and the
// state changes work in any order, so that one warning is dropped.
void gstreamer_log(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer) {
  if (g_str_has_prefix(message, "loop detected in the graph of bin")) return;
  g_log_default_handler(domain, level, message, nullptr);
}

}  // namespace

int main(int argc, char **argv) {
  // One log line per event, also into a pipe (a service manager's journal).
  setvbuf(stdout, nullptr, _IOLBF, 0);
  gst_init(&argc, &argv);
  g_log_set_handler("GStreamer", G_LOG_LEVEL_WARNING, gstreamer_log, nullptr);
  ppserver::Config config;
  if (!ppserver::parse_command_line(argc, argv, &config)) return 2;
  // A client that vanishes must not kill the server with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);

  ppserver::ModelKeeper keeper;
  std::string error;
  if (config.preload && !keeper.load(config, &error)) {
    g_printerr("personaplex-server: %s\n", error.c_str());
    return 1;
  }
  ppserver::Server server(config);
  std::string url;
  if (!server.start(&error, &url)) {
    g_printerr("personaplex-server: %s\n", error.c_str());
    return 1;
  }
  g_print("Listening on %s\n", url.c_str());
  ppserver::AgentCheck agent(&server);
  if (config.agent_port) {
    if (!agent.start(config.host, config.agent_port, &error)) {
      g_printerr("personaplex-server: %s\n", error.c_str());
      return 1;
    }
    g_print("Agent checks on %s:%d\n", config.host.c_str(), config.agent_port);
  }

  GMainLoop *loop = g_main_loop_new(nullptr, FALSE);
  auto quit = [](gpointer loop) -> gboolean {
    g_main_loop_quit(static_cast<GMainLoop *>(loop));
    return G_SOURCE_CONTINUE;
  };
  // SIGTERM (a service manager's stop) drains; SIGINT (Ctrl-C) ends the calls now.
  ppserver::Drain drain(&server, loop, config.drain_timeout_s);
  server.set_drain_handler([&drain] { drain.begin("drain requested"); });
  auto drain_cb = [](gpointer drain) -> gboolean {
    static_cast<ppserver::Drain *>(drain)->begin("SIGTERM");
    return G_SOURCE_CONTINUE;
  };
  const guint sigint = g_unix_signal_add(SIGINT, quit, loop);
  const guint sigterm = g_unix_signal_add(SIGTERM, drain_cb, &drain);
  ppserver::watch_main_loop_lag();
  g_main_loop_run(loop);
  g_print("Shutting down\n");
  server.shut_down();
  g_source_remove(sigint);
  g_source_remove(sigterm);
  g_main_loop_unref(loop);
  return 0;
}
