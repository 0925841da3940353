// The HTTP(S) server: the web page, /api/voices and /api/status, the
// WebRTC signalling websocket (/ws) and the PersonaPlex protocol
// (/api/chat); the session slots (--max-sessions) and the sessions alive.
#pragma once

#include <libsoup/soup.h>

#include <map>
#include <set>
#include <string>

#include "config.h"

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
  int slots_in_use() const { return slots_in_use_; }

  void add(Session *session) { sessions_.insert(session); }
  void remove(Session *session) { sessions_.erase(session); }

 private:
  static void request_started_cb(SoupServer *, SoupServerMessage *msg, gpointer self);
  static gboolean request_timeout_cb(gpointer self);
  static void request_finished_cb(SoupServerMessage *msg, gpointer self);
  static void request_gone_cb(gpointer self, GObject *msg);
  void forget_request(GObject *msg);
  static void static_cb(SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *, gpointer self);
  static void voices_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer self);
  static void status_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer self);
  static void chat_check_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *query, gpointer self);
  static void chat_ws_cb(SoupServer *, SoupServerMessage *msg, const char *, SoupWebsocketConnection *ws,
                         gpointer self);
  static void signalling_check_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer self);
  static void signalling_ws_cb(SoupServer *, SoupServerMessage *msg, const char *, SoupWebsocketConnection *ws,
                               gpointer self);

  Config config_;
  SoupServer *soup_ = nullptr;
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
