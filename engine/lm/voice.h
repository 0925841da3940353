// Voice prompts in the released `.pt` format: a torch.save zip of
// {"embeddings": [N, 1, 1, dim] (bf16 or f32), "cache": int64 [1, streams, ring]}
// holding the LM input embedding of each voice frame after the first and the
// token ring after the voice phase.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <string_view>

#include "lm/config.h"

namespace personaplex::lm {

struct VoiceEmbeddings {
  at::Tensor embeddings;  // [N, 1, 1, dim], as stored
  at::Tensor cache;       // int64 [1, num_streams, ring_size]
};

// Reads and checks a voice file against the config (tensors land on the
// CPU whatever device they were saved from). Throws Error naming the file and
// the problem: unreadable, not a dict, missing key, wrong dtype or shape.
// The file is read by io/torch_save.h, never by a general unpickler.
VoiceEmbeddings load_voice_file(const std::string &path, const LmConfig &config);
// The same from the file's bytes (`path` names it in errors).
VoiceEmbeddings read_voice(const std::string &path, std::string_view bytes, const LmConfig &config);

// Writes a voice file that the reference's torch.load reads (same keys,
// shapes and dtypes, CPU tensors).
void save_voice_file(const std::string &path, const VoiceEmbeddings &voice);

}  // namespace personaplex::lm
