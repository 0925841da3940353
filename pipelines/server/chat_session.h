// A call in the PersonaPlex websocket protocol (/api/chat): the reference
// server's binary messages.
//
//   server -> client  0x00                  the prompts have run: talk
//   client -> server  0x01 + Ogg/Opus bytes the user's audio, cut anywhere
//   server -> client  0x01 + one Ogg page   the headers, then one 80 ms Opus packet each
//   server -> client  0x02 + UTF-8 text     the model's words, piece by piece
//   server -> client  0x05 + UTF-8 text     an error, before the server closes
//
// The model steps once per 80 ms of audio received, as the reference does:
// the client's Ogg Opus decoded here (ogg_opus_input.h: any OpusHead rate,
// channels and packet size), then appsrc ! audioconvert ! audioresample !
// personaplex,
// then audioconvert ! audioresample ! opusenc, and the packets joined in
// twos and written page by page (see ogg_opus_writer.h).
#pragma once

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>

#include <memory>

#include "conversation.h"
#include "ogg_opus_input.h"
#include "ogg_opus_writer.h"
#include "opus_packet_joiner.h"
#include "session.h"

namespace ppserver {

class ChatSession : public Session {
 public:
  // Starts the call (or tells the client it is busy and closes).
  static void open(Server *server, SoupWebsocketConnection *ws, const Conversation &conversation);

 private:
  ChatSession(Server *server, SoupWebsocketConnection *ws);
  bool build(const Conversation &conversation, std::string *error);

  void on_ws_message(SoupWebsocketDataType type, GBytes *message) override;
  void on_playing() override;
  void on_tick(gint64 now_us) override;
  void on_teardown() override;
  void tell_error(const std::string &text) override;

  static GstFlowReturn audio_sample_cb(GstAppSink *sink, gpointer self);
  static GstFlowReturn text_sample_cb(GstAppSink *sink, gpointer self);
  void write_audio(GstSample *sample);
  void push_pcm(const std::vector<float> &pcm);

  GstAppSrc *input_ = nullptr;
  std::unique_ptr<OggOpusInput> decoder_;
  guint64 pushed_samples_ = 0;
  gint64 last_audio_us_;
  bool talking_ = false;         // the prompts have run
  std::vector<float> early_pcm_;  // received before

  // Streaming thread only.
  std::unique_ptr<OggOpusWriter> ogg_;
  bool sent_headers_ = false;
  OpusPacketJoiner joiner_{2};
};

}  // namespace ppserver
