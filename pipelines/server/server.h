// The HTTP(S) server: the web page, /api/voices and /api/status, the
// WebRTC signalling websocket (/ws) and the PersonaPlex protocol
// (/api/chat); the session slots (--max-sessions) and the sessions alive.
#pragma once

#include <libsoup/soup.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "config.h"
#include "metrics.h"
#include "static_files.h"

namespace ppserver {

class Session;

class Server {
 public:
  explicit Server(const Config &config);
  ~Server();

  // Listens; returns false with `error` set when it cannot. `url` is where
  // the page is.
  bool start(std::string *error, std::string *url);
  // Ends every call; returns once their pipelines are down (or after a while).
  void shut_down();

  const Config &config() const { return config_; }

  // Session slots: a call holds one from its start until its pipeline is down.
  bool take_slot();
  void give_slot();
  bool has_room() const { return !draining_ && slots_in_use_ < config_.max_sessions; }
  int slots_in_use() const { return slots_in_use_; }

  void add(Session *session) { sessions_.insert(session); }
  void remove(Session *session) { sessions_.erase(session); }

  // Why take_slot() said no, for the client ("busy: ..." or "draining: ...").
  std::string refusal() const;

  // Operators (operator_endpoints.h, health.cpp): metrics, health, drain.
  Metrics &metrics() { return metrics_; }
  std::string metrics_text() const;
  bool healthy() const;
  std::string health_problem() const;
  // A call's prompts ran (ok) or its model failed (`error`): calls that fail
  // in a row mark the server unhealthy.
  void call_outcome(bool ok, const std::string &error);
  void call_playing(int delta) { calls_playing_ += delta; }
  bool draining() const { return draining_; }
  void set_draining() { draining_ = true; }
  // Who drains on POST /admin/drain; request_drain() is false without one.
  void set_drain_handler(std::function<void()> handler) { drain_handler_ = std::move(handler); }
  bool request_drain();

 private:
  static void request_started_cb(SoupServer *, SoupServerMessage *msg, gpointer self);
  static gboolean request_timeout_cb(gpointer self);
  static void request_finished_cb(SoupServerMessage *msg, gpointer self);
  static void request_gone_cb(gpointer self, GObject *msg);
  void forget_request(GObject *msg);
  static void static_cb(SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *, gpointer self);
  static void voices_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer self);
  static void status_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer self);
  bool refused_before_handshake(SoupServerMessage *msg);
  static void chat_check_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *query, gpointer self);
  static void chat_ws_cb(SoupServer *, SoupServerMessage *msg, const char *, SoupWebsocketConnection *ws,
                         gpointer self);
  static void signalling_check_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer self);
  static void signalling_ws_cb(SoupServer *, SoupServerMessage *msg, const char *, SoupWebsocketConnection *ws,
                               gpointer self);

  static gboolean sample_batch_cb(gpointer self);

  Config config_;
  SoupServer *soup_ = nullptr;
  Metrics metrics_;
  std::unique_ptr<StaticFiles> static_files_;  // --static
  bool draining_ = false, shutting_down_ = false;
  int failed_in_a_row_ = 0, calls_playing_ = 0;
  std::string last_failure_;
  std::function<void()> drain_handler_;
  guint batch_timer_ = 0;
  int slots_in_use_ = 0;
  std::set<Session *> sessions_;

  struct PendingRequest {
    GSocket *socket;
    gint64 deadline;
  };
  std::map<GObject *, PendingRequest> requests_;  // by SoupServerMessage
  guint request_timer_ = 0;
};

}  // namespace ppserver
