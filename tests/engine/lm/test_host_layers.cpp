// LM layers kept in host memory (LmWeights::host_layers) and uploaded each
// step: the same conversation as the model held on the device, prompts
// prefilled and steps sampled, with the layers' bytes off the device.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "lm/conversation.h"
#include "lm/prompt.h"
#include "lm_fixture.h"

using namespace personaplex;
using namespace personaplex::lm;

namespace {

int64_t layer_linear_bytes(const nn::LayerWeights &l) {
  return l.in_proj.nbytes() + l.out_proj.nbytes() + l.mlp_in.nbytes() + l.mlp_out.nbytes();
}

struct Run {
  std::vector<std::vector<int64_t>> tokens;
  std::vector<at::Tensor> text_logits;
  at::Tensor last_keys;  // the last layer's cache
};

// A prompt prefilled (one chunk through every layer), then sampled steps.
Run converse(const std::shared_ptr<const LmModel> &model, int64_t steps) {
  ConversationOptions o;
  o.keep_logits = true;
  o.seed = 5;
  Conversation conv(model, o);
  Prompt p;
  const LmConfig &c = model->config();
  p.voice.codes = at::arange(kAudioCodebooks * 3, at::kLong).view({kAudioCodebooks, 3}).mul(13).remainder(c.card);
  for (int64_t i = 0; i < 4; ++i) p.text_tokens.push_back((i * 7 + 3) % c.text_card);
  p.prefill = true;
  run_prompts(conv, p);
  Run r;
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<int64_t> user(size_t(c.user_codebooks()));
    for (size_t q = 0; q < user.size(); ++q) user[q] = (s * 31 + int64_t(q) * 17) % c.card;
    std::optional<StepResult> out = conv.step_user(user);
    if (!out) continue;
    r.tokens.push_back(out->tokens);
    r.text_logits.push_back(conv.last_text_logits().cpu().clone());
  }
  r.last_keys = conv.temporal_state().kv.layer(size_t(c.num_layers - 1)).keys.cpu().clone();
  return r;
}

void expect_same_run(const Run &a, const Run &b) {
  ASSERT_EQ(a.tokens.size(), b.tokens.size());
  ASSERT_FALSE(a.tokens.empty());
  for (size_t s = 0; s < a.tokens.size(); ++s) {
    EXPECT_EQ(a.tokens[s], b.tokens[s]) << "step " << s;
    EXPECT_TRUE(at::equal(a.text_logits[s], b.text_logits[s])) << "step " << s;
  }
  EXPECT_TRUE(at::equal(a.last_keys, b.last_keys));
}

void expect_host_layers_converse_alike(const at::Device &device) {
  const LmConfig c = test::tiny_lm_config(64, 4, 3, 40);
  const Run ref = converse(test::loaded_random_lm(c, device, 4), 30);
  for (int64_t host : {int64_t(1), c.num_layers}) {
    SCOPED_TRACE(std::to_string(host) + " layers in host memory");
      expect_same_run(converse(test::loaded_random_lm(c, device, 4, host), 30), ref);
  }
}

}  // namespace

TEST(HostLayers, LoadKeepsTheLastLayersInHostMemory) {
  const LmConfig c = test::tiny_lm_config(64, 4, 3, 40);
  auto all = test::loaded_random_lm(c, at::kCPU, 1);
  auto two = test::loaded_random_lm(c, at::kCPU, 1, 2);
  const LmWeights &w = two->weights();
  EXPECT_EQ(w.host_layers(), 2);
  EXPECT_FALSE(w.transformer.layers[0].host);
  EXPECT_TRUE(w.transformer.layers[1].host);
  EXPECT_TRUE(w.transformer.layers[2].host);
  EXPECT_EQ(w.nbytes(), all->weights().nbytes());
  EXPECT_EQ(w.host_nbytes(), layer_linear_bytes(w.transformer.layers[1]) + layer_linear_bytes(w.transformer.layers[2]));
  EXPECT_EQ(all->weights().host_nbytes(), 0);
}

TEST(HostLayers, ConversationIsTheDeviceModels) { expect_host_layers_converse_alike(at::kCPU); }

// On a GPU: pinned host memory, uploads on a side stream, steps in CUDA
// graphs; the same results as the weights held on the device.
TEST(HostLayers, CudaConversationIsTheDeviceModels) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  auto model = test::loaded_random_lm(test::tiny_lm_config(64, 4, 3, 40), at::kCUDA, 1, 1);
  const nn::LayerWeights &last = model->weights().transformer.layers[2];
  EXPECT_TRUE(last.in_proj.weight.device().is_cpu());
  EXPECT_TRUE(last.in_proj.weight.is_pinned());
  EXPECT_TRUE(model->weights().transformer.layers[1].in_proj.weight.is_cuda());
  expect_host_layers_converse_alike(at::kCUDA);
}

TEST(HostLayers, MoreThanTheModelHasIsAnError) {
  const LmConfig c = test::tiny_lm_config(32, 2, 2, 40);
  const std::string path = test::temp_dir() + "/lm.safetensors";
  write_random_lm_weights(path, c, at::kFloat, 1);
  try {
    LmWeights::load(path, c, at::kCPU, at::kFloat, WeightFormat::kAsLoaded, 3);
    FAIL() << "no error";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("cannot keep 3 layers in host memory: the model has 2"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(LmWeights::load(path, c, at::kCPU, at::kFloat, WeightFormat::kAsLoaded, -1), Error);
}
