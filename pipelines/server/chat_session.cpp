#include "chat_session.h"

#include <gst/app/gstappsink.h>

#include <cstring>

#include "server.h"

namespace ppserver {
namespace {

constexpr guint8 kHandshake = 0x00, kAudio = 0x01, kText = 0x02, kError = 0x05;
// Audio received but not yet stepped through. A client sending more is
// flooding.
constexpr guint64 kMaxQueuedSeconds = 60;
// The client's Opus is decoded at Opus's own rate (RFC 7845 5.1), whatever
// its OpusHead says; the pipeline resamples it for the model.
constexpr int kDecodeRate = 48000;

const char *kPipeline =
    "appsrc name=in format=time ! audioconvert ! audioresample ! personaplex name=pp text-unit=piece "
    "pp.src ! queue ! audioconvert ! audioresample ! opusenc frame-size=40 ! "
    "appsink name=audio sync=false async=false "
    "pp.text_src ! queue ! appsink name=text sync=false async=false";

std::string header_packet(const GValue *headers, guint index) {
  if (!headers || !GST_VALUE_HOLDS_ARRAY(headers) || gst_value_array_get_size(headers) <= index) return "";
  const GValue *v = gst_value_array_get_value(headers, index);
  if (!GST_VALUE_HOLDS_BUFFER(v)) return "";
  GstBuffer *buffer = gst_value_get_buffer(v);
  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) return "";
  std::string packet(reinterpret_cast<const char *>(map.data), map.size);
  gst_buffer_unmap(buffer, &map);
  return packet;
}

}  // namespace

ChatSession::ChatSession(Server *server, SoupWebsocketConnection *ws)
    : Session(server, ws, "chat"), last_audio_us_(g_get_monotonic_time()) {}

void ChatSession::open(Server *server, SoupWebsocketConnection *ws, const Conversation &conversation) {
  ChatSession *self = new ChatSession(server, ws);
  if (!self->admit()) {
    self->fail(1013, server->refusal());
    return;
  }
  std::string error;
  if (!self->build(conversation, &error)) {
    self->fail(1011, error);
    return;
  }
  self->log("started: voice \"%s\", prompt of %ld characters", conversation.voice.c_str(),
            g_utf8_strlen(conversation.prompt.c_str(), -1));
}

bool ChatSession::build(const Conversation &conversation, std::string *error) {
  GError *e = nullptr;
  GstElement *pipeline = gst_parse_launch(kPipeline, &e);
  if (!pipeline || e) {
    *error = std::string("cannot make the pipeline: ") + (e ? e->message : "?");
    if (e) g_error_free(e);
    if (pipeline) gst_object_unref(pipeline);
    return false;
  }
  GstBin *bin = GST_BIN(pipeline);
  GstElement *pp = gst_bin_get_by_name(bin, "pp");
  configure_personaplex(pp, server_->config(), conversation, false);
  gst_object_unref(pp);
  input_ = GST_APP_SRC(gst_bin_get_by_name(bin, "in"));
  GstCaps *caps = gst_caps_new_simple("audio/x-raw", "format", G_TYPE_STRING, "F32LE", "rate", G_TYPE_INT,
                                      kDecodeRate, "channels", G_TYPE_INT, 1, "layout", G_TYPE_STRING,
                                      "interleaved", nullptr);
  gst_app_src_set_caps(input_, caps);
  gst_caps_unref(caps);
  decoder_ = std::make_unique<OggOpusInput>(kDecodeRate);

  GstAppSinkCallbacks audio_callbacks = {};
  audio_callbacks.new_sample = audio_sample_cb;
  GstElement *audio = gst_bin_get_by_name(bin, "audio");
  gst_app_sink_set_callbacks(GST_APP_SINK(audio), &audio_callbacks, this, nullptr);
  gst_object_unref(audio);
  GstAppSinkCallbacks text_callbacks = {};
  text_callbacks.new_sample = text_sample_cb;
  GstElement *text = gst_bin_get_by_name(bin, "text");
  gst_app_sink_set_callbacks(GST_APP_SINK(text), &text_callbacks, this, nullptr);
  gst_object_unref(text);

  ogg_ = std::make_unique<OggOpusWriter>(g_random_int());
  start_pipeline(pipeline);
  return true;
}

void ChatSession::on_teardown() {
  if (input_) gst_object_unref(input_);
  input_ = nullptr;
}

void ChatSession::tell_error(const std::string &text) {
  send_later(SOUP_WEBSOCKET_DATA_BINARY, std::string(1, static_cast<char>(kError)) + text);
}

void ChatSession::on_playing() {
  talking_ = true;
  last_audio_us_ = g_get_monotonic_time();
  log("prompts done after %.1f s", (last_audio_us_ - started_us_) / 1e6);
  send_later(SOUP_WEBSOCKET_DATA_BINARY, std::string(1, static_cast<char>(kHandshake)));
  push_pcm(early_pcm_);
  early_pcm_.clear();
}

// Decoded audio into the pipeline, timestamped by its sample count.
void ChatSession::push_pcm(const std::vector<float> &pcm) {
  if (pcm.empty() || !input_) return;
  const gsize bytes = pcm.size() * sizeof(float);
  GstBuffer *buffer = gst_buffer_new_memdup(pcm.data(), bytes);
  GST_BUFFER_PTS(buffer) = gst_util_uint64_scale_int(pushed_samples_, GST_SECOND, kDecodeRate);
  pushed_samples_ += pcm.size();
  GST_BUFFER_DURATION(buffer) =
      gst_util_uint64_scale_int(pushed_samples_, GST_SECOND, kDecodeRate) - GST_BUFFER_PTS(buffer);
  gst_app_src_push_buffer(input_, buffer);
}

void ChatSession::on_ws_message(SoupWebsocketDataType type, GBytes *message) {
  gsize size = 0;
  const guint8 *data = static_cast<const guint8 *>(g_bytes_get_data(message, &size));
  if (type != SOUP_WEBSOCKET_DATA_BINARY) {
    fail(1003, "expected binary messages (0x01 + Ogg/Opus audio)");
    return;
  }
  if (size == 0 || data[0] != kAudio) return;  // as the reference: other kinds are ignored
  last_audio_us_ = g_get_monotonic_time();
  if (size == 1 || !input_) return;
  std::vector<float> pcm;
  if (!decoder_->push(data + 1, size - 1, &pcm)) {
    fail(1007, "invalid Ogg/Opus audio: " + decoder_->error());
    return;
  }
  const guint64 queued = talking_ ? gst_app_src_get_current_level_bytes(input_) / sizeof(float) : early_pcm_.size();
  if (queued + pcm.size() > kMaxQueuedSeconds * kDecodeRate) {
    fail(1009, "too much audio queued: send it in real time");
    return;
  }
  if (!talking_)  // before the handshake: appsrc takes buffers once started
    early_pcm_.insert(early_pcm_.end(), pcm.begin(), pcm.end());
  else
    push_pcm(pcm);
}

void ChatSession::on_tick(gint64 now_us) {
  const Config &c = server_->config();
  if (talking_ && now_us - last_audio_us_ > gint64(c.idle_timeout_s) * G_USEC_PER_SEC)
    fail(1001, "idle: no audio for " + std::to_string(c.idle_timeout_s) + " s");
  else if (c.max_call_s > 0 && now_us - started_us_ > gint64(c.max_call_s) * G_USEC_PER_SEC)
    fail(1001, "call time limit of " + std::to_string(c.max_call_s) + " s reached");
}

GstFlowReturn ChatSession::audio_sample_cb(GstAppSink *sink, gpointer data) {
  ChatSession *self = static_cast<ChatSession *>(data);
  GstSample *sample = gst_app_sink_pull_sample(sink);
  if (!sample) return GST_FLOW_EOS;
  self->write_audio(sample);
  gst_sample_unref(sample);
  return GST_FLOW_OK;
}

void ChatSession::write_audio(GstSample *sample) {
  auto send_page = [this](const std::string &page) {
    std::string message(1, static_cast<char>(kAudio));
    message += page;
    send_later(SOUP_WEBSOCKET_DATA_BINARY, std::move(message));
  };
  if (!sent_headers_) {
    const GstStructure *s = gst_caps_get_structure(gst_sample_get_caps(sample), 0);
    const GValue *headers = gst_structure_get_value(s, "streamheader");
    const std::string head = header_packet(headers, 0), tags = header_packet(headers, 1);
    if (head.empty() || tags.empty()) {
      in_main([this] { fail(1011, "the Opus encoder gave no stream headers"); });
      return;
    }
    for (const std::string &page : ogg_->header_pages(head, tags)) send_page(page);
    sent_headers_ = true;
  }
  GstBuffer *buffer = gst_sample_get_buffer(sample);
  GstMapInfo map;
  if (!buffer || !gst_buffer_map(buffer, &map, GST_MAP_READ)) return;
  std::vector<std::string> packets;
  int64_t samples = 0;
  if (joiner_.push(map.data, map.size, &packets, &samples)) send_page(ogg_->audio_page(packets, samples));
  gst_buffer_unmap(buffer, &map);
}

GstFlowReturn ChatSession::text_sample_cb(GstAppSink *sink, gpointer data) {
  ChatSession *self = static_cast<ChatSession *>(data);
  GstSample *sample = gst_app_sink_pull_sample(sink);
  if (!sample) return GST_FLOW_EOS;
  GstBuffer *buffer = gst_sample_get_buffer(sample);
  GstMapInfo map;
  if (buffer && gst_buffer_map(buffer, &map, GST_MAP_READ)) {
    std::string message(1, static_cast<char>(kText));
    message.append(reinterpret_cast<const char *>(map.data), map.size);
    gst_buffer_unmap(buffer, &map);
    self->send_later(SOUP_WEBSOCKET_DATA_BINARY, std::move(message));
  }
  gst_sample_unref(sample);
  return GST_FLOW_OK;
}

}  // namespace ppserver
