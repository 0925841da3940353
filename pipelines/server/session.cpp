#include "session.h"

#include <cstdarg>

#include "public_message.h"
#include "server.h"

namespace ppserver {
namespace {

std::atomic<unsigned> next_id{1};

struct Job {
  Session *session;
  std::function<void()> fn;
};

}  // namespace

Session::Session(Server *server, SoupWebsocketConnection *ws, const char *kind)
    : server_(server), ws_(SOUP_WEBSOCKET_CONNECTION(g_object_ref(ws))), started_us_(g_get_monotonic_time()) {
  kind_ = kind;
  id_ = kind_ + "#" + std::to_string(next_id.fetch_add(1));
  server_->add(this);
  message_handler_ = g_signal_connect(ws_, "message", G_CALLBACK(ws_message_cb), this);
  closed_handler_ = g_signal_connect(ws_, "closed", G_CALLBACK(ws_closed_cb), this);
  soup_websocket_connection_set_keepalive_interval(ws_, 15);
  tick_ = g_timeout_add_seconds(1, tick_cb, this);
}

Session::~Session() {
  g_signal_handler_disconnect(ws_, message_handler_);
  g_signal_handler_disconnect(ws_, closed_handler_);
  g_object_unref(ws_);
  server_->metrics().call_gone(id_);
  server_->remove(this);
}

void Session::unref() {
  if (refs_.fetch_sub(1) != 1) return;
  // Sessions live in the main thread; so does their end.
  if (g_main_context_is_owner(g_main_context_default()))
    delete this;
  else
    g_idle_add_full(G_PRIORITY_DEFAULT, [](gpointer s) -> gboolean {
      delete static_cast<Session *>(s);
      return G_SOURCE_REMOVE;
    }, this, nullptr);
}

void Session::log(const char *format, ...) {
  va_list args;
  va_start(args, format);
  gchar *text = g_strdup_vprintf(format, args);
  va_end(args);
  g_print("%s: %s\n", id_.c_str(), text);
  g_free(text);
}

void Session::in_main(std::function<void()> fn) {
  ref();
  GSource *source = g_idle_source_new();
  g_source_set_priority(source, G_PRIORITY_DEFAULT);
  g_source_set_callback(
      source,
      [](gpointer data) -> gboolean {
        Job *job = static_cast<Job *>(data);
        if (!job->session->ended()) job->fn();
        return G_SOURCE_REMOVE;
      },
      new Job{this, std::move(fn)},
      [](gpointer data) {
        Job *job = static_cast<Job *>(data);
        job->session->unref();
        delete job;
      });
  g_source_attach(source, nullptr);
  g_source_unref(source);
}

void Session::send_later(SoupWebsocketDataType type, std::string payload) {
  std::lock_guard<std::mutex> lock(outbox_mutex_);
  outbox_.push_back({type, std::move(payload)});
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  in_main([this] { flush_outbox(); });
}

void Session::flush_outbox() {
  std::deque<Outgoing> out;
  {
    std::lock_guard<std::mutex> lock(outbox_mutex_);
    out.swap(outbox_);
    flush_scheduled_ = false;
  }
  if (soup_websocket_connection_get_state(ws_) != SOUP_WEBSOCKET_STATE_OPEN) return;
  for (const Outgoing &m : out) {
    if (m.type == SOUP_WEBSOCKET_DATA_TEXT)
      soup_websocket_connection_send_text(ws_, m.payload.c_str());
    else
      soup_websocket_connection_send_binary(ws_, m.payload.data(), m.payload.size());
  }
}

bool Session::admit() {
  if (admitted_) return true;
  if (!server_->take_slot()) return false;
  admitted_ = true;
  server_->metrics().call_started(kind_);
  return true;
}

void Session::start_pipeline(GstElement *pipeline) {
  pipeline_ = pipeline;
  GstBus *bus = gst_pipeline_get_bus(GST_PIPELINE(pipeline_));
  bus_watch_ = gst_bus_add_watch(bus, bus_cb, this);
  gst_object_unref(bus);
  ref();  // for the worker
  gst_element_call_async(
      pipeline_,
      [](GstElement *pipeline, gpointer data) {
        Session *self = static_cast<Session *>(data);
        const gint64 begin = g_get_monotonic_time();
        const GstStateChangeReturn ret = gst_element_set_state(pipeline, GST_STATE_PLAYING);
        const gint64 end = g_get_monotonic_time();
        // Ended meanwhile: the teardown may have run first; take it down again.
        if (self->ended()) gst_element_set_state(pipeline, GST_STATE_NULL);
        self->in_main([self, ret, begin, end] {
          // A failure posts an error too; it ends the call with its text.
          if (ret == GST_STATE_CHANGE_FAILURE) return;
          // Where a slow start went: before the pipeline started, its start
          // (the model's prompts), the main loop's turn.
          const gint64 now = g_get_monotonic_time();
          self->log("started in %.3f s (%.3f s to the pipeline, %.3f s its start, %.3f s to here)",
                    (now - self->started_us_) / 1e6, (begin - self->started_us_) / 1e6, (end - begin) / 1e6,
                    (now - end) / 1e6);
          self->count_playing();
          self->on_playing();
        });
        self->unref();
      },
      this, nullptr);
}

void Session::on_error(GstMessage *, const std::string &text) { fail(1011, text); }

void Session::fail(gushort code, const std::string &text) {
  if (ended()) return;
  log("%s", text.c_str());
  // The log has it whole; the client, without the server's paths.
  const std::string told = public_message(text);
  tell_error(told);
  end(code, told);
}

gboolean Session::bus_cb(GstBus *, GstMessage *message, gpointer data) {
  Session *self = static_cast<Session *>(data);
  if (self->ended()) return G_SOURCE_CONTINUE;
  switch (GST_MESSAGE_TYPE(message)) {
    case GST_MESSAGE_ERROR: {
      GError *error = nullptr;
      gchar *debug = nullptr;
      gst_message_parse_error(message, &error, &debug);
      self->log("error from %s: %s (%s)", GST_OBJECT_NAME(GST_MESSAGE_SRC(message)), error->message,
                debug ? debug : "");
      const std::string text = error->message;
      g_error_free(error);
      g_free(debug);
      // The model's own errors tell about the server's health; the client's bad audio does not.
      if (g_strcmp0(G_OBJECT_TYPE_NAME(GST_MESSAGE_SRC(message)), "GstPersonaPlex") == 0)
        self->server_->call_outcome(false, text);
      self->on_error(message, text);
      break;
    }
    case GST_MESSAGE_WARNING: {
      GError *error = nullptr;
      gst_message_parse_warning(message, &error, nullptr);
      self->log("warning from %s: %s", GST_OBJECT_NAME(GST_MESSAGE_SRC(message)), error->message);
      const std::string text = error->message;
      g_error_free(error);
      self->on_warning(message, text);
      break;
    }
    case GST_MESSAGE_LATENCY:
      // Off the main loop: the recalculation's latency event waits for the
      // pipeline's state lock, which a start holds through the call's
      // prompts, and every call's pages go out from the main loop.
      gst_element_call_async(
          self->pipeline_, [](GstElement *pipeline, gpointer) { gst_bin_recalculate_latency(GST_BIN(pipeline)); },
          nullptr, nullptr);
      break;
    case GST_MESSAGE_ELEMENT:
      if (const GstStructure *s = gst_message_get_structure(message))
        self->server_->metrics().element_message(self->id_, s);
      self->on_element_message(message);
      break;
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

gboolean Session::tick_cb(gpointer data) {
  Session *self = static_cast<Session *>(data);
  self->on_tick(g_get_monotonic_time());
  return G_SOURCE_CONTINUE;
}

void Session::ws_message_cb(SoupWebsocketConnection *, gint type, GBytes *message, gpointer data) {
  Session *self = static_cast<Session *>(data);
  if (!self->ended()) self->on_ws_message(static_cast<SoupWebsocketDataType>(type), message);
}

void Session::ws_closed_cb(SoupWebsocketConnection *ws, gpointer data) {
  Session *self = static_cast<Session *>(data);
  if (!self->ended()) {
    const gushort code = soup_websocket_connection_get_close_code(ws);
    self->log("client left (close code %u)", code);
    self->end(1000, "");
  }
  self->unref();  // the websocket's reference
}

void Session::count_playing() {
  playing_ = true;
  server_->call_playing(1);
  server_->call_outcome(true, "");
  server_->metrics().handshake((g_get_monotonic_time() - started_us_) / 1e6);
}

void Session::end(gushort code, const std::string &reason) {
  if (ended_.exchange(true)) return;
  if (admitted_) server_->metrics().call_ended(code);
  if (playing_) server_->call_playing(-1);
  playing_ = false;
  if (tick_) g_source_remove(tick_);
  tick_ = 0;
  if (soup_websocket_connection_get_state(ws_) == SOUP_WEBSOCKET_STATE_OPEN) {
    flush_outbox();
    // Close reasons fit in a control frame (125 bytes, 2 for the code).
    std::string r = reason.substr(0, 120);
    while (!r.empty() && !g_utf8_validate(r.data(), r.size(), nullptr)) r.pop_back();
    log("ending: %u %s", code, r.c_str());
    soup_websocket_connection_close(ws_, code, r.empty() ? nullptr : r.c_str());
  }
  teardown_pipeline();
}

void Session::teardown_pipeline() {
  if (bus_watch_) g_source_remove(bus_watch_);
  bus_watch_ = 0;
  if (!pipeline_) {
    if (admitted_) server_->give_slot();
    admitted_ = false;
    return;
  }
  on_teardown();
  GstElement *pipeline = pipeline_;
  pipeline_ = nullptr;
  ref();  // until the pipeline is down
  gst_element_call_async(
      pipeline,
      [](GstElement *p, gpointer data) {
        Session *self = static_cast<Session *>(data);
        gst_element_set_state(p, GST_STATE_NULL);
        gst_object_ref(p);
        // Back in the main thread: the slot is free once everything is.
        GSource *source = g_idle_source_new();
        struct Done {
          Session *session;
          GstElement *pipeline;
        };
        g_source_set_callback(
            source,
            [](gpointer d) -> gboolean {
              Done *done = static_cast<Done *>(d);
              gst_object_unref(done->pipeline);
              if (done->session->admitted_) done->session->server_->give_slot();
              done->session->admitted_ = false;
              done->session->log("freed");
              done->session->unref();
              return G_SOURCE_REMOVE;
            },
            new Done{self, p}, [](gpointer d) { delete static_cast<Done *>(d); });
        g_source_attach(source, nullptr);
        g_source_unref(source);
      },
      this, nullptr);
  // The pipeline's own reference: the worker above holds one of its own.
  gst_object_unref(pipeline);
}

}  // namespace ppserver
