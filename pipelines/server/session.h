// One client's call: its websocket and its pipeline. Everything about a
// session happens in the main thread; GStreamer's threads hand work over
// with in_main() and send_later(). The pipeline's state changes run in
// GStreamer's worker threads (the prompts take seconds on a real model), so
// no client ever waits for another.
//
// A session is freed when its websocket is closed and its pipeline has
// reached NULL; the server's session slot is given back then.
#pragma once

#include <gst/gst.h>
#include <libsoup/soup.h>

#include <atomic>
#include <deque>
#include <functional>
#include <mutex>
#include <string>

namespace ppserver {

class Server;

class Session {
 public:
  Session(Server *server, SoupWebsocketConnection *ws, const char *kind);
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  void ref() { refs_.fetch_add(1); }
  void unref();

  // Ends the call: closes the websocket with `code` and `reason` (when still
  // open) and takes the pipeline down. Main thread; only the first call counts.
  void end(gushort code, const std::string &reason);
  // Ends the call on an error: logs it, tells the client (tell_error), ends.
  void fail(gushort code, const std::string &text);
  bool ended() const { return ended_.load(); }
  const std::string &id() const { return id_; }

 protected:
  virtual ~Session();

  // Runs `fn` in the main thread later, unless the session has ended by then.
  void in_main(std::function<void()> fn);
  // Sends a websocket message from any thread; messages keep their order.
  void send_later(SoupWebsocketDataType type, std::string payload);
  void send_text_later(std::string text) { send_later(SOUP_WEBSOCKET_DATA_TEXT, std::move(text)); }

  // Takes a server slot; false (the client told) when all are in use.
  bool admit();
  // Owns `pipeline`, watches its bus, and takes it to PLAYING in a worker
  // thread; then calls on_playing() (the prompts have run) or ends.
  void start_pipeline(GstElement *pipeline);

  virtual void on_ws_message(SoupWebsocketDataType type, GBytes *message) = 0;
  virtual void on_playing() = 0;
  // Every second while the call lasts (timeouts).
  virtual void on_tick(gint64 now_us) {}
  // A pipeline error, already logged; ends the call by default.
  virtual void on_error(GstMessage *message, const std::string &text);
  virtual void on_element_message(GstMessage *message) {}
  // A pipeline warning, already logged (the element falling behind real time).
  virtual void on_warning(GstMessage *message, const std::string &text) {}
  // Tells the client about an error before the close (its close reason may
  // be cut short, and not every client reads it).
  virtual void tell_error(const std::string &text) {}
  // Drops references to pipeline objects before the pipeline goes to NULL.
  virtual void on_teardown() {}

  void log(const char *format, ...) G_GNUC_PRINTF(2, 3);

  Server *server_;
  SoupWebsocketConnection *ws_;
  GstElement *pipeline_ = nullptr;
  gint64 started_us_;

 private:
  static void ws_message_cb(SoupWebsocketConnection *ws, gint type, GBytes *message, gpointer self);
  static void ws_closed_cb(SoupWebsocketConnection *ws, gpointer self);
  static gboolean bus_cb(GstBus *bus, GstMessage *message, gpointer self);
  static gboolean tick_cb(gpointer self);
  void flush_outbox();
  void teardown_pipeline();
  void count_playing();

  std::atomic<int> refs_{1};  // the websocket's, dropped when it has closed
  std::atomic<bool> ended_{false};
  std::string id_, kind_;
  bool admitted_ = false;
  bool playing_ = false;  // the prompts have run (counted in the server's metrics)
  guint bus_watch_ = 0;
  guint tick_ = 0;
  gulong message_handler_ = 0, closed_handler_ = 0;

  struct Outgoing {
    SoupWebsocketDataType type;
    std::string payload;
  };
  std::mutex outbox_mutex_;
  std::deque<Outgoing> outbox_;
  bool flush_scheduled_ = false;
};

}  // namespace ppserver
