// A tiny Mimi (32-sample frames) with random weights, for fast unit tests.
#pragma once

#include <memory>
#include <string>

#include "mimi/config.h"
#include "mimi/mimi.h"
#include "mimi/random_weights.h"
#include "test_util.h"

namespace personaplex::test {

inline mimi::MimiConfig tiny_mimi_config(int64_t context = 64) {
  mimi::MimiConfig c;
  c.sample_rate = 400;
  c.frame_rate = 12.5;  // 32 samples per frame
  c.seanet.n_filters = 2;
  c.seanet.dimension = 16;
  c.seanet.ratios = {4, 4};  // hop 16: two encoder steps per frame
  auto &t = c.transformer;
  t.core.d_model = 16;
  t.core.num_heads = 2;
  t.core.num_layers = 2;
  t.core.dim_feedforward = 32;
  t.core.context = context;
  t.input_dimension = t.output_dimension = 16;
  c.quantizer.dimension = 8;
  c.quantizer.n_q = 4;
  c.quantizer.bins = 64;
  c.quantizer.input_dimension = c.quantizer.output_dimension = 16;
  c.num_codebooks = 3;
  return c;
}

// Writes the config and random weights to a fresh directory; returns it.
inline std::string write_tiny_mimi(const mimi::MimiConfig &c, uint64_t seed = 1) {
  std::string dir = temp_dir();
  mimi::write_random_weights(dir + "/weights.safetensors", c, seed, /*scale=*/0.3);
  FILE *f = std::fopen((dir + "/config.json").c_str(), "w");
  std::string json = c.to_json();
  std::fwrite(json.data(), 1, json.size(), f);
  std::fclose(f);
  return dir;
}

inline std::shared_ptr<const mimi::Mimi> load_tiny_mimi(const std::string &dir) {
  return mimi::Mimi::load(dir + "/weights.safetensors", dir + "/config.json", at::kCPU, at::kFloat);
}

}  // namespace personaplex::test
