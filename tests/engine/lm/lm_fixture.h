// Shared by the LM tests: the tiny reference LM of the fixtures and its
// recorded conversation.
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "lm/conversation.h"
#include "lm/model.h"
#include "lm/prompt.h"
#include "lm/random_weights.h"
#include "lm/voice.h"
#include "test_util.h"

namespace personaplex::test {

inline std::string lm_dir() { return fixtures_dir() + "/lm"; }

inline std::shared_ptr<const lm::LmModel> tiny_lm() {
  static auto model = lm::LmModel::load(lm_dir() + "/weights.safetensors", lm_dir() + "/config.json",
                                        at::Device(at::kCPU), at::kFloat);
  return model;
}

// A tiny LM configuration for random weights: these temporal sizes, a
// 40-token text vocabulary, a one-layer depformer of 16.
inline lm::LmConfig tiny_lm_config(int64_t dim, int64_t heads, int64_t layers, int64_t context) {
  lm::LmConfig c;
  c.dim = dim;
  c.num_heads = heads;
  c.num_layers = layers;
  c.context = context;
  c.text_card = 40;
  c.depformer_dim = 16;
  c.depformer_num_heads = 2;
  c.depformer_num_layers = 1;
  c.depformer_dim_feedforward = 44;
  c.validate("test");
  return c;
}

// A small one: two layers of 64, a 40-step context, a two-layer depformer of 32.
inline lm::LmConfig small_lm_config() {
  lm::LmConfig c = tiny_lm_config(64, 4, 2, 40);
  c.depformer_dim = 32;
  c.depformer_num_layers = 2;
  c.depformer_dim_feedforward = 88;
  c.validate("test");
  return c;
}

// Random weights of `config` (scale 0.2: argmaxes far from ties) written in
// the released layout and loaded from the file, the last `host_layers`
// temporal layers in host memory.
inline std::shared_ptr<const lm::LmModel> loaded_random_lm(const lm::LmConfig &config, const at::Device &device,
                                                           uint64_t seed, int64_t host_layers = 0) {
  const std::string path = temp_dir() + "/lm.safetensors";
  lm::write_random_lm_weights(path, config, at::kFloat, seed, 0.2);
  return std::make_shared<const lm::LmModel>(
      lm::LmWeights::load(path, config, device, at::kFloat, lm::WeightFormat::kAsLoaded, host_layers));
}

struct LmIo {
  at::Tensor user_codes, out_tokens;  // [1, 8, 24], [1, 17, 24]
  std::vector<int64_t> prompt_tokens;
  std::string prompt;
};

inline LmIo lm_io() {
  SafeTensors f(lm_dir() + "/io.safetensors");
  LmIo io;
  io.user_codes = f.load("user_codes", at::kLong, at::kCPU);
  io.out_tokens = f.load("out_tokens", at::kLong, at::kCPU);
  std::ifstream in(lm_dir() + "/io.json");
  auto j = nlohmann::json::parse(in);
  io.prompt_tokens = j.at("prompt_tokens").get<std::vector<int64_t>>();
  io.prompt = j.at("prompt").get<std::string>();
  return io;
}

inline std::vector<int64_t> user_frame(const LmIo &io, int64_t step) {
  at::Tensor u = io.user_codes.select(2, step % io.user_codes.size(2)).reshape({-1}).contiguous();
  return {u.data_ptr<int64_t>(), u.data_ptr<int64_t>() + u.numel()};
}

// The fixture's prompt with its stored voice.
inline lm::Prompt fixture_prompt(const LmIo &io, const lm::LmConfig &config) {
  lm::Prompt p;
  p.voice.stored = lm::load_voice_file(lm_dir() + "/voice.pt", config);
  p.text_tokens = io.prompt_tokens;
  return p;
}

// Runs the fixture's conversation; returns the output tokens [1, dep_q + 1, 24].
inline at::Tensor run_fixture_conversation(lm::Conversation &conv, const LmIo &io,
                                           const lm::Prompt &prompt) {
  lm::run_prompts(conv, prompt);
  const int64_t steps = io.user_codes.size(2);
  std::vector<at::Tensor> cols;
  for (int64_t s = 0; s < steps; ++s) {
    auto out = conv.step_user(user_frame(io, s));
    EXPECT_TRUE(out.has_value());
    if (out) cols.push_back(at::tensor(out->tokens, at::kLong));
  }
  return at::stack(cols, 1).unsqueeze(0);
}

inline lm::ConversationOptions greedy() {
  lm::ConversationOptions o;
  o.sampling.greedy = true;
  return o;
}

}  // namespace personaplex::test
