#include "webrtc_session.h"

#include <gst/app/gstappsink.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/nice/nice.h>
#include <nice/agent.h>

#include <nlohmann/json.hpp>

#include "server.h"
#include "signalling_message.h"

namespace ppserver {
namespace {

using json = nlohmann::json;

// Words said before the data channel opens wait for it, up to this many.
constexpr size_t kMaxPendingText = 256;
// Jitter buffer: enough for a LAN or a good connection, and little delay.
constexpr guint kJitterBufferMs = 100;

const char *kPipeline =
    "webrtcbin name=webrtc bundle-policy=max-bundle "
    "audioconvert name=input ! audioresample ! personaplex name=pp text-unit=piece "
    "pp.src ! queue ! audioconvert ! audioresample ! opusenc audio-type=voice ! rtpopuspay pt=111 ! "
    "application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! webrtc. "
    "pp.text_src ! queue ! appsink name=text sync=false async=false";

}  // namespace

WebRtcSession::WebRtcSession(Server *server, SoupWebsocketConnection *ws) : Session(server, ws, "webrtc") {}

void WebRtcSession::open(Server *server, SoupWebsocketConnection *ws) { new WebRtcSession(server, ws); }

void WebRtcSession::tell_error(const std::string &text) {
  send_text_later(json{{"type", "error"}, {"message", text}}.dump());
}

// The model's own warnings (falling behind real time) are the page's to show.
void WebRtcSession::on_warning(GstMessage *message, const std::string &text) {
  if (g_strcmp0(G_OBJECT_TYPE_NAME(GST_MESSAGE_SRC(message)), "GstPersonaPlex") == 0)
    send_text_later(json{{"type", "warning"}, {"message", text}}.dump());
}

void WebRtcSession::on_ws_message(SoupWebsocketDataType type, GBytes *message) {
  gsize size = 0;
  const char *data = static_cast<const char *>(g_bytes_get_data(message, &size));
  json m;
  if (type == SOUP_WEBSOCKET_DATA_TEXT) m = read_signalling_message(std::string_view(data, size));
  if (m.is_discarded() || m.is_null()) {
    fail(1003, "signalling messages are JSON objects with a \"type\"");
    return;
  }
  const std::string kind = m["type"];
  if (kind == "start") {
    if (started_) {
      fail(1008, "the call has already started");
      return;
    }
    Conversation conversation;
    const std::string problem = read_conversation(server_->config(), start_fields(m), false, &conversation);
    if (!problem.empty()) {
      fail(1008, problem);
      return;
    }
    start_call(conversation);
  } else if (kind == "answer" && m.contains("sdp") && m["sdp"].is_string()) {
    set_answer(m["sdp"]);
  } else if (kind == "ice" && m.contains("candidate") && m["candidate"].is_string()) {
    const json index = m.value("sdpMLineIndex", json(0));
    add_remote_candidate(m["candidate"], index.is_number_unsigned() ? index.get<guint>() : 0);
  } else if (kind == "stop") {
    end(1000, "stopped");
  } else {
    fail(1003, "unexpected signalling message \"" + kind.substr(0, 40) + "\"");
  }
}

void WebRtcSession::start_call(const Conversation &conversation) {
  started_ = true;
  if (!admit()) {
    fail(1013, server_->refusal());
    return;
  }
  std::string error;
  if (!build(conversation, &error)) {
    fail(1011, error);
    return;
  }
  log("started: voice \"%s\", prompt of %ld characters", conversation.voice.c_str(),
      g_utf8_strlen(conversation.prompt.c_str(), -1));
  send_text_later(json{{"type", "accepted"}}.dump());
}

bool WebRtcSession::build(const Conversation &conversation, std::string *error) {
  GError *e = nullptr;
  GstElement *pipeline = gst_parse_launch(kPipeline, &e);
  if (!pipeline || e) {
    *error = std::string("cannot make the pipeline: ") + (e ? e->message : "?");
    if (e) g_error_free(e);
    if (pipeline) gst_object_unref(pipeline);
    return false;
  }
  const Config &c = server_->config();
  GstBin *bin = GST_BIN(pipeline);
  GstElement *pp = gst_bin_get_by_name(bin, "pp");
  configure_personaplex(pp, c, conversation, true);
  gst_object_unref(pp);
  input_ = gst_bin_get_by_name(bin, "input");
  webrtc_ = gst_bin_get_by_name(bin, "webrtc");
  g_object_set(webrtc_, "latency", kJitterBufferMs, nullptr);
  if (!c.stun_server.empty()) g_object_set(webrtc_, "stun-server", c.stun_server.c_str(), nullptr);
  if (!c.turn_server.empty()) g_object_set(webrtc_, "turn-server", c.turn_server.c_str(), nullptr);
  configure_ice(webrtc_);
  g_signal_connect(webrtc_, "on-negotiation-needed", G_CALLBACK(negotiation_needed_cb), this);
  g_signal_connect(webrtc_, "on-ice-candidate", G_CALLBACK(ice_candidate_cb), this);
  g_signal_connect(webrtc_, "pad-added", G_CALLBACK(webrtc_pad_added_cb), this);
  g_signal_connect(webrtc_, "notify::connection-state", G_CALLBACK(connection_state_cb), this);

  GstAppSinkCallbacks callbacks = {};
  callbacks.new_sample = [](GstAppSink *sink, gpointer data) -> GstFlowReturn {
    WebRtcSession *self = static_cast<WebRtcSession *>(data);
    GstSample *sample = gst_app_sink_pull_sample(sink);
    if (!sample) return GST_FLOW_EOS;
    GstBuffer *buffer = gst_sample_get_buffer(sample);
    GstMapInfo map;
    if (buffer && gst_buffer_map(buffer, &map, GST_MAP_READ)) {
      std::string text(reinterpret_cast<const char *>(map.data), map.size);
      gst_buffer_unmap(buffer, &map);
      self->in_main([self, text] { self->send_transcript(text); });
    }
    gst_sample_unref(sample);
    return GST_FLOW_OK;
  };
  GstElement *text = gst_bin_get_by_name(bin, "text");
  gst_app_sink_set_callbacks(GST_APP_SINK(text), &callbacks, this, nullptr);
  gst_object_unref(text);

  // The data channel is made in READY (cheap: the model loads in PAUSED),
  // before the offer.
  if (gst_element_set_state(pipeline, GST_STATE_READY) == GST_STATE_CHANGE_FAILURE) {
    *error = "cannot start WebRTC";
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(pipeline);
    return false;
  }
  GstStructure *options = gst_structure_new("options", "ordered", G_TYPE_BOOLEAN, TRUE, nullptr);
  g_signal_emit_by_name(webrtc_, "create-data-channel", "transcript", options, &channel_);
  gst_structure_free(options);
  if (channel_) g_signal_connect(channel_, "on-open", G_CALLBACK(channel_open_cb), this);
  start_pipeline(pipeline);
  return true;
}

// UDP candidates only, on the configured ports, from the listed local
// addresses only (libnice otherwise offers every interface but the loopback one).
void WebRtcSession::configure_ice(GstElement *webrtc) {
  GstWebRTCICE *ice = nullptr;
  g_object_get(webrtc, "ice-agent", &ice, nullptr);
  if (!ice) return;
  if (g_object_class_find_property(G_OBJECT_GET_CLASS(ice), "ice-tcp")) g_object_set(ice, "ice-tcp", FALSE, nullptr);
  const Config &c = server_->config();
  if (c.ice_max_port > 0)
    g_object_set(ice, "min-rtp-port", guint(c.ice_min_port), "max-rtp-port", guint(c.ice_max_port), nullptr);
  NiceAgent *agent = nullptr;
  if (!server_->config().ice_addresses.empty() && g_object_class_find_property(G_OBJECT_GET_CLASS(ice), "agent"))
    g_object_get(ice, "agent", &agent, nullptr);
  if (agent) {
    for (const std::string &a : server_->config().ice_addresses) {
      NiceAddress address;
      nice_address_init(&address);
      if (nice_address_set_from_string(&address, a.c_str()))
        nice_agent_add_local_address(agent, &address);
      else
        log("not an address: %s", a.c_str());
    }
    g_object_unref(agent);
  }
  gst_object_unref(ice);
}

void WebRtcSession::negotiation_needed_cb(GstElement *webrtc, gpointer data) {
  WebRtcSession *self = static_cast<WebRtcSession *>(data);
  if (self->offered_.exchange(true)) return;  // one negotiation per call
  self->ref();
  GstPromise *promise = gst_promise_new_with_change_func(offer_created_cb, self,
                                                         [](gpointer s) { static_cast<Session *>(s)->unref(); });
  g_signal_emit_by_name(webrtc, "create-offer", nullptr, promise);
}

void WebRtcSession::offer_created_cb(GstPromise *promise, gpointer data) {
  WebRtcSession *self = static_cast<WebRtcSession *>(data);
  GstWebRTCSessionDescription *offer = nullptr;
  if (gst_promise_wait(promise) == GST_PROMISE_RESULT_REPLIED) {
    const GstStructure *reply = gst_promise_get_reply(promise);
    if (reply) gst_structure_get(reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, nullptr);
  }
  gst_promise_unref(promise);
  if (!offer) {
    self->in_main([self] { self->fail(1011, "could not make the WebRTC offer"); });
    return;
  }
  g_signal_emit_by_name(self->webrtc_, "set-local-description", offer, nullptr);
  gchar *sdp = gst_sdp_message_as_text(offer->sdp);
  self->send_text_later(json{{"type", "offer"}, {"sdp", sdp}}.dump());
  g_free(sdp);
  gst_webrtc_session_description_free(offer);
}

void WebRtcSession::ice_candidate_cb(GstElement *, guint mline, gchar *candidate, gpointer data) {
  WebRtcSession *self = static_cast<WebRtcSession *>(data);
  self->send_text_later(json{{"type", "ice"}, {"candidate", candidate}, {"sdpMLineIndex", mline}}.dump());
}

void WebRtcSession::set_answer(const std::string &text) {
  if (!webrtc_) {
    fail(1008, "an answer before the call started");
    return;
  }
  GstSDPMessage *sdp = nullptr;
  gst_sdp_message_new(&sdp);
  if (gst_sdp_message_parse_buffer(reinterpret_cast<const guint8 *>(text.data()), text.size(), sdp) != GST_SDP_OK) {
    gst_sdp_message_free(sdp);
    fail(1008, "the answer is not SDP");
    return;
  }
  GstWebRTCSessionDescription *answer = gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_ANSWER, sdp);
  g_signal_emit_by_name(webrtc_, "set-remote-description", answer, nullptr);
  gst_webrtc_session_description_free(answer);
}

void WebRtcSession::add_remote_candidate(const std::string &candidate, guint mline) {
  if (!webrtc_) {
    fail(1008, "an ICE candidate before the call started");
    return;
  }
  if (candidate.empty()) return;  // end of candidates
  g_signal_emit_by_name(webrtc_, "add-ice-candidate", mline, candidate.c_str());
}

void WebRtcSession::webrtc_pad_added_cb(GstElement *webrtc, GstPad *pad, gpointer data) {
  WebRtcSession *self = static_cast<WebRtcSession *>(data);
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
  GstElement *pipeline = GST_ELEMENT(gst_element_get_parent(webrtc));
  if (!pipeline) return;
  GstElement *decodebin = gst_element_factory_make("decodebin", nullptr);
  g_signal_connect(decodebin, "pad-added", G_CALLBACK(decoded_pad_added_cb), self);
  gst_bin_add(GST_BIN(pipeline), decodebin);
  gst_element_sync_state_with_parent(decodebin);
  GstPad *sink = gst_element_get_static_pad(decodebin, "sink");
  gst_pad_link(pad, sink);
  gst_object_unref(sink);
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, media_probe_cb, self, nullptr);
  gst_object_unref(pipeline);
}

GstPadProbeReturn WebRtcSession::media_probe_cb(GstPad *, GstPadProbeInfo *, gpointer data) {
  static_cast<WebRtcSession *>(data)->last_media_us_ = g_get_monotonic_time();
  return GST_PAD_PROBE_OK;
}

// The first decoded audio goes to the model; anything else is dropped.
void WebRtcSession::decoded_pad_added_cb(GstElement *decodebin, GstPad *pad, gpointer data) {
  WebRtcSession *self = static_cast<WebRtcSession *>(data);
  GstCaps *caps = gst_pad_get_current_caps(pad);
  if (!caps) caps = gst_pad_query_caps(pad, nullptr);
  const bool audio = gst_structure_has_name(gst_caps_get_structure(caps, 0), "audio/x-raw");
  gst_caps_unref(caps);
  GstPad *sink = gst_element_get_static_pad(self->input_, "sink");
  if (audio && !self->have_remote_audio_.exchange(true) && gst_pad_link(pad, sink) == GST_PAD_LINK_OK) {
    gst_object_unref(sink);
    return;
  }
  gst_object_unref(sink);
  GstElement *pipeline = GST_ELEMENT(gst_element_get_parent(decodebin));
  if (!pipeline) return;
  GstElement *fakesink = gst_element_factory_make("fakesink", nullptr);
  g_object_set(fakesink, "async", FALSE, "sync", FALSE, nullptr);
  gst_bin_add(GST_BIN(pipeline), fakesink);
  gst_element_sync_state_with_parent(fakesink);
  GstPad *fake = gst_element_get_static_pad(fakesink, "sink");
  gst_pad_link(pad, fake);
  gst_object_unref(fake);
  gst_object_unref(pipeline);
}

void WebRtcSession::connection_state_cb(GstElement *webrtc, GParamSpec *, gpointer data) {
  WebRtcSession *self = static_cast<WebRtcSession *>(data);
  GstWebRTCPeerConnectionState state;
  g_object_get(webrtc, "connection-state", &state, nullptr);
  self->in_main([self, state] { self->connection_state_changed(state); });
}

void WebRtcSession::connection_state_changed(GstWebRTCPeerConnectionState state) {
  if (state == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED && !connected_) {
    connected_ = true;
    last_media_us_ = g_get_monotonic_time();
    log("connected after %.1f s", (g_get_monotonic_time() - started_us_) / 1e6);
  } else if (state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED) {
    fail(1011, "the WebRTC connection failed");
  } else if (state == GST_WEBRTC_PEER_CONNECTION_STATE_CLOSED) {
    end(1000, "the WebRTC connection closed");
  }
}

void WebRtcSession::channel_open_cb(GstWebRTCDataChannel *, gpointer data) {
  WebRtcSession *self = static_cast<WebRtcSession *>(data);
  self->in_main([self] {
    self->channel_open_ = true;
    while (!self->pending_text_.empty()) {
      const std::string text = self->pending_text_.front();
      self->pending_text_.pop_front();
      self->send_transcript(text);
    }
  });
}

void WebRtcSession::send_transcript(const std::string &text) {
  if (!channel_) return;
  if (!channel_open_) {
    if (pending_text_.size() < kMaxPendingText) pending_text_.push_back(text);
    return;
  }
  GError *error = nullptr;
  if (!gst_webrtc_data_channel_send_string_full(channel_, text.c_str(), &error)) {
    log("transcript not sent: %s", error ? error->message : "?");
    g_clear_error(&error);
  }
}

void WebRtcSession::on_playing() {
  log("prompts done after %.1f s", (g_get_monotonic_time() - started_us_) / 1e6);
  send_text_later(json{{"type", "ready"}}.dump());
}

void WebRtcSession::on_tick(gint64 now_us) {
  const Config &c = server_->config();
  const gint64 s = G_USEC_PER_SEC;
  if (!connected_ && now_us - started_us_ > c.handshake_timeout_s * s)
    fail(1008, "the call did not connect within " + std::to_string(c.handshake_timeout_s) + " s");
  else if (connected_ && now_us - last_media_us_.load() > c.idle_timeout_s * s)
    fail(1001, "idle: no audio from the browser for " + std::to_string(c.idle_timeout_s) + " s");
  else if (c.max_call_s > 0 && now_us - started_us_ > c.max_call_s * s)
    fail(1001, "call time limit of " + std::to_string(c.max_call_s) + " s reached");
}

void WebRtcSession::on_teardown() {
  if (channel_) g_signal_handlers_disconnect_by_data(channel_, this);
}

// GStreamer's threads may use these until the pipeline is down.
WebRtcSession::~WebRtcSession() {
  if (channel_) g_object_unref(channel_);
  if (webrtc_) gst_object_unref(webrtc_);
  if (input_) gst_object_unref(input_);
}

}  // namespace ppserver
