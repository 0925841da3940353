// A browser call over WebRTC (/ws carries the signalling, JSON text):
//
//   page -> server  {"type":"start","voice_prompt":"NATF2.pt","text_prompt":"..."}
//   server -> page  {"type":"offer","sdp":...}, {"type":"ice","candidate":...,"sdpMLineIndex":N}
//   page -> server  {"type":"answer","sdp":...}, {"type":"ice",...}, {"type":"stop"}
//   server -> page  {"type":"accepted"}, {"type":"ready"} (the prompts have run),
//                   {"type":"warning","message":...} (the model falls behind real time),
//                   {"type":"error","message":...} before a close
//
// The pipeline: webrtcbin's remote audio -> decodebin -> audioconvert ->
// audioresample -> personaplex (live) -> audioconvert -> audioresample ->
// opusenc -> rtpopuspay -> webrtcbin; the reply track is linked before the
// offer, and the words go to the page on the data channel "transcript", one
// message per piece of text.
#pragma once

#include <gst/webrtc/webrtc.h>

#include <atomic>
#include <deque>
#include <string>

#include "conversation.h"
#include "session.h"

namespace ppserver {

class WebRtcSession : public Session {
 public:
  static void open(Server *server, SoupWebsocketConnection *ws);

 private:
  WebRtcSession(Server *server, SoupWebsocketConnection *ws);
  ~WebRtcSession() override;

  void on_ws_message(SoupWebsocketDataType type, GBytes *message) override;
  void on_playing() override;
  void on_tick(gint64 now_us) override;
  void tell_error(const std::string &text) override;
  void on_warning(GstMessage *message, const std::string &text) override;
  void on_teardown() override;

  void start_call(const Conversation &conversation);
  bool build(const Conversation &conversation, std::string *error);
  void configure_ice(GstElement *webrtc);
  void set_answer(const std::string &sdp);
  void add_remote_candidate(const std::string &candidate, guint mline);
  void send_transcript(const std::string &text);
  void connection_state_changed(GstWebRTCPeerConnectionState state);

  static void negotiation_needed_cb(GstElement *webrtc, gpointer self);
  static void offer_created_cb(GstPromise *promise, gpointer self);
  static void ice_candidate_cb(GstElement *webrtc, guint mline, gchar *candidate, gpointer self);
  static void webrtc_pad_added_cb(GstElement *webrtc, GstPad *pad, gpointer self);
  static void decoded_pad_added_cb(GstElement *decodebin, GstPad *pad, gpointer self);
  static void connection_state_cb(GstElement *webrtc, GParamSpec *, gpointer self);
  static void channel_open_cb(GstWebRTCDataChannel *channel, gpointer self);
  static GstPadProbeReturn media_probe_cb(GstPad *pad, GstPadProbeInfo *info, gpointer self);

  GstElement *webrtc_ = nullptr;
  GstElement *input_ = nullptr;  // audioconvert before personaplex
  GstWebRTCDataChannel *channel_ = nullptr;
  bool started_ = false;
  bool channel_open_ = false;
  bool connected_ = false;
  std::deque<std::string> pending_text_;
  std::atomic<bool> offered_{false};
  std::atomic<bool> have_remote_audio_{false};
  std::atomic<gint64> last_media_us_{0};
};

}  // namespace ppserver
