#include "harness.h"

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include <glib/gstdio.h>

#include <csignal>
#include <cstdlib>
#include <cstring>

namespace harness {
namespace {

std::string env(const char *name) {
  const char *v = g_getenv(name);
  return v ? v : "";
}

gboolean accept_any_certificate(SoupMessage *, GTlsCertificate *, GTlsCertificateFlags, gpointer) { return TRUE; }

std::string temp_voices;

void remove_voices() {
  if (temp_voices.empty()) return;
  for (const char *name : {"NATF2.pt", "NATM1.pt"}) {
    gchar *path = g_build_filename(temp_voices.c_str(), name, nullptr);
    g_unlink(path);
    g_free(path);
  }
  g_rmdir(temp_voices.c_str());
}

}  // namespace

std::string fixtures() {
  const std::string dir = env("PERSONAPLEX_FIXTURES");
  gchar *weights = g_build_filename(dir.c_str(), "lm", "weights.safetensors", nullptr);
  const bool ok = !dir.empty() && g_file_test(weights, G_FILE_TEST_IS_REGULAR);
  g_free(weights);
  if (!ok) {
    g_print("skipped: the reference fixtures are not there (PERSONAPLEX_FIXTURES)\n");
    exit(77);
  }
  return dir;
}

std::string voices_dir() {
  if (!temp_voices.empty()) return temp_voices;
  gchar *dir = g_dir_make_tmp("pp-voices-XXXXXX", nullptr);
  g_assert_nonnull(dir);
  temp_voices = dir;
  g_free(dir);
  atexit(remove_voices);
  gchar *source = g_build_filename(fixtures().c_str(), "lm", "voice.pt", nullptr);
  gchar *data = nullptr;
  gsize size = 0;
  g_assert_true(g_file_get_contents(source, &data, &size, nullptr));
  for (const char *name : {"NATF2.pt", "NATM1.pt"}) {
    gchar *path = g_build_filename(temp_voices.c_str(), name, nullptr);
    g_assert_true(g_file_set_contents(path, data, size, nullptr));
    g_free(path);
  }
  g_free(data);
  g_free(source);
  return temp_voices;
}

std::vector<std::string> model_options() {
  const std::string f = fixtures();
  return {"--lm-weights", f + "/lm/weights.safetensors", "--lm-config", f + "/lm/config.json",
          "--mimi-weights", f + "/mimi/weights.safetensors", "--mimi-config", f + "/mimi/config.json",
          "--tokenizer", f + "/lm/tokenizer.model", "--voices-dir", voices_dir(), "--device", "cpu"};
}

bool wait_until(const std::function<bool()> &done, double seconds) {
  const gint64 deadline = g_get_monotonic_time() + gint64(seconds * G_USEC_PER_SEC);
  while (!done() && g_get_monotonic_time() < deadline) {
    // A timeout source wakes the loop, so the deadline holds without events.
    const guint wake = g_timeout_add(20, [](gpointer) { return G_SOURCE_REMOVE; }, nullptr);
    g_main_context_iteration(nullptr, TRUE);
    if (g_main_context_find_source_by_id(nullptr, wake)) g_source_remove(wake);
  }
  return done();
}

// ---------------------------------------------------------------------------

static GSubprocess *spawn(const std::vector<std::string> &args) {
  std::vector<const gchar *> argv;
  const std::string server = env("PERSONAPLEX_SERVER");
  g_assert_false(server.empty());
  argv.push_back(server.c_str());
  for (const std::string &a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  GError *error = nullptr;
  GSubprocess *p = g_subprocess_newv(argv.data(),
      static_cast<GSubprocessFlags>(G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE), &error);
  g_assert_no_error(error);
  return p;
}

ServerProcess::ServerProcess(const std::vector<std::string> &extra, bool https) {
  std::vector<std::string> args = {"--host", "127.0.0.1", "--port", "0"};
  if (!https) args.push_back("--http");
  for (const std::string &a : model_options()) args.push_back(a);
  for (const std::string &a : extra) args.push_back(a);
  process_ = spawn(args);
  out_ = g_data_input_stream_new(g_subprocess_get_stdout_pipe(process_));
  cancel_ = g_cancellable_new();
  read_next();
  if (!wait_until([this] { return !url_.empty() || eof_; }, 120)) g_error("the server did not start:\n%s", output_.c_str());
  if (url_.empty()) g_error("the server exited:\n%s", output_.c_str());
}

ServerProcess::~ServerProcess() {
  g_subprocess_send_signal(process_, SIGTERM);
  bool exited = false;
  g_subprocess_wait_async(process_, nullptr,
      [](GObject *, GAsyncResult *, gpointer done) { *static_cast<bool *>(done) = true; }, &exited);
  if (!wait_until([&] { return exited; }, 20)) {
    g_printerr("the server did not stop on SIGTERM\n");
    g_subprocess_force_exit(process_);
    wait_until([&] { return exited; }, 5);
  }
  wait_until([this] { return eof_; }, 5);
  if (!eof_) {
    g_cancellable_cancel(cancel_);
    wait_until([this] { return eof_; }, 5);
  }
  const int status = g_subprocess_get_if_exited(process_) ? g_subprocess_get_exit_status(process_) : -1;
  if (status != 0) g_error("the server exited with %d on SIGTERM:\n%s", status, output_.c_str());
  g_object_unref(out_);
  g_object_unref(cancel_);
  g_object_unref(process_);
}

std::string ServerProcess::ws_url(const std::string &path) const {
  std::string base = url_;
  base.replace(0, base.find(':'), base.rfind("https", 0) == 0 ? "wss" : "ws");
  return base + (path[0] == '/' ? path.substr(1) : path);
}

void ServerProcess::read_next() {
  g_data_input_stream_read_line_async(out_, G_PRIORITY_DEFAULT, cancel_, line_cb, this);
}

void ServerProcess::line_cb(GObject *stream, GAsyncResult *result, gpointer data) {
  ServerProcess *self = static_cast<ServerProcess *>(data);
  gsize length = 0;
  gchar *line = g_data_input_stream_read_line_finish_utf8(G_DATA_INPUT_STREAM(stream), result, &length, nullptr);
  if (!line) {
    self->eof_ = true;
    return;
  }
  g_print("  server | %s\n", line);
  self->output_ += std::string(line) + "\n";
  const char *prefix = "Listening on ";
  if (g_str_has_prefix(line, prefix)) self->url_ = line + strlen(prefix);
  g_free(line);
  self->read_next();
}

int run_server(const std::vector<std::string> &args, std::string *output) {
  GSubprocess *p = spawn(args);
  gchar *out = nullptr;
  GError *error = nullptr;
  g_subprocess_communicate_utf8(p, nullptr, nullptr, &out, nullptr, &error);
  g_assert_no_error(error);
  *output = out ? out : "";
  g_free(out);
  const int status = g_subprocess_get_if_exited(p) ? g_subprocess_get_exit_status(p) : -1;
  g_object_unref(p);
  return status;
}

std::string Response::header(const std::string &name) const {
  for (const auto &h : headers)
    if (g_ascii_strcasecmp(h.first.c_str(), name.c_str()) == 0) return h.second;
  return "";
}

Response http_get(const std::string &url, const std::vector<std::pair<std::string, std::string>> &headers) {
  SoupSession *session = soup_session_new();
  SoupMessage *msg = soup_message_new("GET", url.c_str());
  g_assert_nonnull(msg);
  g_signal_connect(msg, "accept-certificate", G_CALLBACK(accept_any_certificate), nullptr);
  for (const auto &h : headers)
    soup_message_headers_replace(soup_message_get_request_headers(msg), h.first.c_str(), h.second.c_str());
  GError *error = nullptr;
  GBytes *body = soup_session_send_and_read(session, msg, nullptr, &error);
  Response r;
  if (error) {
    g_printerr("GET %s: %s\n", url.c_str(), error->message);
    g_error_free(error);
  }
  r.status = soup_message_get_status(msg);
  soup_message_headers_foreach(
      soup_message_get_response_headers(msg),
      [](const char *name, const char *value, gpointer out) {
        static_cast<Response *>(out)->headers.emplace_back(name, value);
      },
      &r);
  if (body) {
    gsize size = 0;
    const char *data = static_cast<const char *>(g_bytes_get_data(body, &size));
    r.body.assign(data, size);
    g_bytes_unref(body);
  }
  g_object_unref(msg);
  g_object_unref(session);
  return r;
}

// ---------------------------------------------------------------------------

Client::Client(const std::string &url, const std::string &origin) {
  session_ = soup_session_new();
  msg_ = soup_message_new("GET", url.c_str());
  g_assert_nonnull(msg_);
  g_signal_connect(msg_, "accept-certificate", G_CALLBACK(accept_any_certificate), nullptr);
  soup_session_websocket_connect_async(session_, msg_, origin.empty() ? nullptr : origin.c_str(), nullptr,
                                       G_PRIORITY_DEFAULT, nullptr, connected_cb, this);
  wait_until([this] { return done_; }, 60);
  g_assert_true(done_);
}

Client::~Client() {
  if (ws_) {
    g_signal_handlers_disconnect_by_data(ws_, this);
    if (soup_websocket_connection_get_state(ws_) == SOUP_WEBSOCKET_STATE_OPEN) soup_websocket_connection_close(ws_, 1000, nullptr);
    g_object_unref(ws_);
  }
  g_object_unref(msg_);
  g_object_unref(session_);
}

void Client::connected_cb(GObject *session, GAsyncResult *result, gpointer data) {
  Client *self = static_cast<Client *>(data);
  GError *error = nullptr;
  self->ws_ = soup_session_websocket_connect_finish(SOUP_SESSION(session), result, &error);
  self->status_ = soup_message_get_status(self->msg_);
  if (error) g_error_free(error);
  if (self->ws_) {
    soup_websocket_connection_set_max_incoming_payload_size(self->ws_, 1 << 20);
    g_signal_connect(self->ws_, "message", G_CALLBACK(message_cb), self);
    g_signal_connect(self->ws_, "closed", G_CALLBACK(closed_cb), self);
  }
  self->done_ = true;
}

void Client::message_cb(SoupWebsocketConnection *, gint type, GBytes *message, gpointer data) {
  gsize size = 0;
  const char *bytes = static_cast<const char *>(g_bytes_get_data(message, &size));
  static_cast<Client *>(data)->messages_.push_back({static_cast<SoupWebsocketDataType>(type), std::string(bytes, size)});
}

void Client::closed_cb(SoupWebsocketConnection *ws, gpointer data) {
  Client *self = static_cast<Client *>(data);
  self->closed_ = true;
  self->close_code_ = soup_websocket_connection_get_close_code(ws);
  const char *reason = soup_websocket_connection_get_close_data(ws);
  self->close_reason_ = reason ? reason : "";
}

void Client::send_binary(const std::string &data) {
  g_assert_nonnull(ws_);
  if (soup_websocket_connection_get_state(ws_) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_send_binary(ws_, data.data(), data.size());
}

void Client::send_text(const std::string &text) {
  g_assert_nonnull(ws_);
  if (soup_websocket_connection_get_state(ws_) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_send_text(ws_, text.c_str());
}

void Client::close(gushort code) {
  if (ws_ && soup_websocket_connection_get_state(ws_) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close(ws_, code, nullptr);
}

void Client::drop() {
  g_assert_nonnull(ws_);
  g_signal_handlers_disconnect_by_data(ws_, this);
  g_io_stream_close(soup_websocket_connection_get_io_stream(ws_), nullptr, nullptr);
  closed_ = true;
}

bool Client::wait_closed(double seconds) {
  return wait_until([this] { return closed_; }, seconds);
}

int Client::wait_binary(guint8 kind, double seconds, size_t from) {
  int found = -1;
  wait_until(
      [&] {
        for (size_t i = from; i < messages_.size(); ++i) {
          const Message &m = messages_[i];
          if (m.type == SOUP_WEBSOCKET_DATA_BINARY && !m.data.empty() && guint8(m.data[0]) == kind) {
            found = int(i);
            return true;
          }
        }
        return closed_;
      },
      seconds);
  return found;
}

// ---------------------------------------------------------------------------

static std::string pull_all(GstElement *pipeline, GstAppSink *sink) {
  std::string out;
  while (GstSample *sample = gst_app_sink_pull_sample(sink)) {
    GstBuffer *buffer = gst_sample_get_buffer(sample);
    GstMapInfo map;
    if (gst_buffer_map(buffer, &map, GST_MAP_READ)) {
      out.append(reinterpret_cast<const char *>(map.data), map.size);
      gst_buffer_unmap(buffer, &map);
    }
    gst_sample_unref(sample);
  }
  GstBus *bus = gst_element_get_bus(pipeline);
  GstMessage *error = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  if (error) {
    GError *e = nullptr;
    gst_message_parse_error(error, &e, nullptr);
    g_printerr("pipeline error: %s\n", e->message);
    g_error_free(e);
    gst_message_unref(error);
    out.clear();
  }
  gst_object_unref(bus);
  return out;
}

std::string ogg_opus_of_wav(const std::string &path, int repeat, const std::string &encoder) {
  std::string sources;
  for (int i = 0; i < repeat; ++i) sources += "filesrc location=\"" + path + "\" ! wavparse ! c. ";
  gchar *description = g_strdup_printf(
      "concat name=c ! audioconvert ! audioresample ! audio/x-raw,rate=24000,channels=1 ! "
      "%s ! oggmux ! appsink name=sink sync=false %s", encoder.c_str(), sources.c_str());
  GstElement *pipeline = gst_parse_launch(description, nullptr);
  g_free(description);
  g_assert_nonnull(pipeline);
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  const std::string ogg = pull_all(pipeline, GST_APP_SINK(sink));
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
  return ogg;
}

std::vector<float> decode_ogg_opus(const std::string &ogg) {
  GstElement *pipeline = gst_parse_launch(
      "appsrc name=src caps=application/ogg ! oggdemux ! opusdec ! audioconvert ! audioresample ! "
      "audio/x-raw,format=F32LE,rate=24000,channels=1 ! appsink name=sink sync=false", nullptr);
  g_assert_nonnull(pipeline);
  GstElement *src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  gst_app_src_push_buffer(GST_APP_SRC(src), gst_buffer_new_memdup(ogg.data(), ogg.size()));
  gst_app_src_end_of_stream(GST_APP_SRC(src));
  const std::string bytes = pull_all(pipeline, GST_APP_SINK(sink));
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(src);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
  std::vector<float> samples(bytes.size() / sizeof(float));
  if (!samples.empty()) memcpy(samples.data(), bytes.data(), samples.size() * sizeof(float));
  return samples;
}

}  // namespace harness

namespace harness {

std::vector<float> pcm_of_wav(const std::string &path, int rate, int channels) {
  gchar *description = g_strdup_printf(
      "filesrc location=\"%s\" ! wavparse ! audioconvert ! audioresample ! "
      "audio/x-raw,format=F32LE,rate=%d,channels=%d ! appsink name=sink sync=false",
      path.c_str(), rate, channels);
  GstElement *pipeline = gst_parse_launch(description, nullptr);
  g_free(description);
  g_assert_nonnull(pipeline);
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  const std::string bytes = pull_all(pipeline, GST_APP_SINK(sink));
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
  std::vector<float> samples(bytes.size() / sizeof(float));
  if (!samples.empty()) memcpy(samples.data(), bytes.data(), samples.size() * sizeof(float));
  return samples;
}

}  // namespace harness
