// What a client chooses for its call (voice, role prompt, sampling), read
// from the request's fields and checked before anything is started, and
// the personaplex element set up with it and the server's model.
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <map>
#include <string>

#include "config.h"

namespace ppserver {

struct Conversation {
  std::string voice;   // a file name in the voices directory; "" = none
  std::string prompt;  // the role
  bool has_seed = false;
  uint64_t seed = 0;  // G_MAXUINT64: a fresh one
  double temperature = -1, temperature_text = -1;  // < 0: the element's default
  int64_t top_k = 0, top_k_text = 0;               // 0: the element's default
};

// Fields, as in the reference protocol's query string: text_prompt,
// voice_prompt, seed, audio_temperature, text_temperature, audio_topk,
// text_topk (others are ignored). With `require_prompts` text_prompt and
// voice_prompt must be there (text_prompt may be empty), as the protocol
// has it; else they default to the server's. Returns "" or what is wrong,
// for the client.
std::string read_conversation(const Config &config, const std::map<std::string, std::string> &fields,
                              bool require_prompts, Conversation *out);

// Sets up a personaplex element for `conversation` on the server's model.
void configure_personaplex(GstElement *personaplex, const Config &config, const Conversation &conversation,
                           bool live);

// Sets the server's model files on a personaplex element.
void set_model_properties(GstElement *personaplex, const Config &config);

}  // namespace ppserver
