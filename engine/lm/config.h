// The PersonaPlex language model's hyper-parameters: the reference
// constructor's arguments (the names of its loader's `_lm_kwargs`), defaulting
// to the released 7B model and overridable by a config.json of the same names.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nn/transformer.h"

namespace personaplex::lm {

// Codebooks per audio stream (Mimi's 8 of 32); rows 1..8 of a step are the
// agent's, rows 9.. the user's.
constexpr int64_t kAudioCodebooks = 8;

struct LmConfig {
  // Temporal transformer.
  int64_t dim = 4096;
  int64_t num_heads = 32;
  int64_t num_layers = 32;
  double hidden_scale = 4.125;
  int64_t context = 3000;
  double max_period = 10000;
  std::string norm = "rms_norm_f32";
  std::string gating = "silu";

  // Vocabularies and streams.
  int64_t text_card = 32000;
  int64_t existing_text_padding_id = 3;  // -1: none (the LM adds its own pad)
  int64_t card = 2048;
  int64_t n_q = 16;    // audio streams in the input
  int64_t dep_q = 16;  // audio streams predicted by the depformer
  std::vector<int64_t> delays = {0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1};

  // Depth transformer (one set of weights per codebook step).
  int64_t depformer_dim = 1024;
  int64_t depformer_num_heads = 16;
  int64_t depformer_num_layers = 6;
  int64_t depformer_dim_feedforward = 4224;  // int(4.125 * 1024)
  bool depformer_multi_linear = true;
  bool depformer_weights_per_step = true;

  // The released model's configuration.
  static LmConfig released() { return {}; }
  // Reads a config.json in the reference's names; absent keys keep the
  // released values. Throws Error naming the file on bad JSON, bad values or
  // unsupported architecture options.
  static LmConfig from_json_file(const std::string &path);
  static LmConfig from_json_string(const std::string &json, const std::string &origin);

  // Throws Error when the values are inconsistent (delays count, head split...).
  void validate(const std::string &origin) const;

  int64_t num_streams() const { return n_q + 1; }  // text + audio
  int64_t user_codebooks() const { return n_q - kAudioCodebooks; }
  int64_t max_delay() const;
  int64_t ring_size() const { return max_delay() + 3; }  // token ring columns
  int64_t text_out() const { return text_card + (existing_text_padding_id < 0 ? 1 : 0); }
  int64_t text_pad_id() const {
    return existing_text_padding_id < 0 ? text_card : existing_text_padding_id;
  }

  nn::TransformerConfig temporal() const;
  // Hidden width of one depformer step's gated MLP.
  int64_t depformer_hidden() const;
};

}  // namespace personaplex::lm
