// Mimi's architecture hyper-parameters. The defaults are the released
// checkpoint; a config.json (the reference constructor arguments, as the
// fixtures store them) overrides them. Every size the engine uses comes from
// here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nn/transformer.h"

namespace personaplex::mimi {

// How a causal conv fills its left context before the first sample.
enum class PadMode { Constant, Replicate };

struct SeanetConfig {
  int64_t channels = 1;
  int64_t dimension = 512;  // latent width
  int64_t n_filters = 64;
  int64_t n_residual_layers = 1;
  std::vector<int64_t> ratios = {8, 6, 5, 4};  // decoder order; the encoder reverses it
  int64_t kernel_size = 7;
  int64_t residual_kernel_size = 3;
  int64_t last_kernel_size = 3;
  int64_t dilation_base = 2;
  int64_t compress = 2;
  double elu_alpha = 1.0;
  bool true_skip = true;
  PadMode pad_mode = PadMode::Constant;

  int64_t hop_length() const;  // product of the ratios
};

// The encoder and decoder transformers share one configuration.
struct LatentTransformerConfig {
  nn::TransformerConfig core;  // d_model, heads, layers, ff, context, RoPE...
  int64_t input_dimension = 512;
  int64_t output_dimension = 512;
};

struct QuantizerConfig {
  int64_t dimension = 256;  // codebook vector width
  int64_t n_q = 32;         // levels stored in the checkpoint
  int64_t n_q_semantic = 1;
  int64_t bins = 2048;
  int64_t input_dimension = 512;
  int64_t output_dimension = 512;
};

struct MimiConfig {
  SeanetConfig seanet;
  LatentTransformerConfig transformer;
  QuantizerConfig quantizer;
  int64_t sample_rate = 24000;
  double frame_rate = 12.5;
  int64_t num_codebooks = 8;        // levels produced and consumed
  bool upsample_channel_wise = true;  // depthwise latent upsample (the released model's choice)

  MimiConfig();  // the released configuration

  // Reads a config.json; throws Error naming the file and the key at fault.
  static MimiConfig from_json_file(const std::string &path);
  static MimiConfig from_json_string(const std::string &text, const std::string &source);
  // The same format back (what from_json_* reads).
  std::string to_json() const;
  // Checks the sizes fit together; throws Error naming `source` and the key.
  void validate(const std::string &source) const;

  int64_t frame_size() const;        // samples per frame (1920)
  int64_t resample_stride() const;   // encoder steps per frame (2); 1 = no resampling
};

}  // namespace personaplex::mimi
