#include <gtest/gtest.h>

#include <cctype>
#include <map>

#include "core/error.h"
#include "lm/weights.h"
#include "lm_fixture.h"

using namespace personaplex;
using namespace personaplex::lm;

namespace {

std::string load_error(const LmConfig &c) {
  try {
    LmWeights::load(test::lm_dir() + "/weights.safetensors", c, at::kCPU, at::kFloat);
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

LmConfig fixture_config() { return LmConfig::from_json_file(test::lm_dir() + "/config.json"); }

// The fixture's checkpoint cut to an 8-step depformer, as older checkpoints are.
std::string write_eight_step_checkpoint(const std::string &dir) {
  SafeTensors f(test::lm_dir() + "/weights.safetensors");
  std::map<std::string, at::Tensor> out;
  const int64_t d = 32;
  for (const auto &name : f.names()) {
    at::Tensor t = f.load(name, at::kFloat, at::kCPU);
    auto index_after = [&](const std::string &prefix) -> int64_t {
      auto p = name.find(prefix);
      if (p == std::string::npos || !std::isdigit(name[p + prefix.size()])) return -1;
      return std::stol(name.substr(p + prefix.size()));
    };
    int64_t k = std::max({index_after("gating."), index_after("linears."), index_after("depformer_in.")});
    if (k >= 8) continue;
    if (index_after("depformer_emb.") >= 7) continue;
    if (name.find("depformer.") == 0 && name.find("in_proj_weight") != std::string::npos)
      t = t.narrow(0, 0, 8 * 3 * d).clone();
    if (name.find("depformer.") == 0 && name.find("out_proj.weight") != std::string::npos)
      t = t.narrow(0, 0, 8 * d).clone();
    out[name] = t;
  }
  const std::string path = dir + "/eight.safetensors";
  write_safetensors(path, out);
  return path;
}

}  // namespace

TEST(LmWeights, LoadsTheFixture) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  auto w = LmWeights::load(test::lm_dir() + "/weights.safetensors", fixture_config(), at::kCPU, at::kFloat);
  EXPECT_EQ(w->emb.sizes(), (std::vector<int64_t>{16, 2049, 64}));
  EXPECT_EQ(w->depformer.size(), 2u);
  EXPECT_EQ(w->depformer[0].in_proj.size(), 16u);
  EXPECT_EQ(w->depformer_emb.size(), 15u);
  EXPECT_EQ(w->linears.size(), 16u);
  EXPECT_EQ(w->out_norm.scalar_type(), at::kFloat);
  EXPECT_FALSE(at::equal(w->depformer[0].in_proj[8].weight, w->depformer[0].in_proj[0].weight));
}

TEST(LmWeights, ConfigMismatchNamesTheTensor) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  LmConfig c = fixture_config();
  c.dim = 32;
  c.num_heads = 2;
  std::string e = load_error(c);
  EXPECT_NE(e.find("emb.0.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[2049, 32]"), std::string::npos) << e;
  EXPECT_NE(e.find("does the config match"), std::string::npos) << e;

  c = fixture_config();
  c.num_layers = 3;
  e = load_error(c);
  EXPECT_NE(e.find("transformer.layers.2"), std::string::npos) << e;

  c = fixture_config();
  c.depformer_dim_feedforward = 64;
  e = load_error(c);
  EXPECT_NE(e.find("gating.0.linear_in"), std::string::npos) << e;

  c = fixture_config();
  c.text_card = 100;
  e = load_error(c);
  EXPECT_NE(e.find("text_emb.weight"), std::string::npos) << e;
}

TEST(LmWeights, MissingFileIsAnError) {
  EXPECT_THROW(LmWeights::load("/nonexistent/model.safetensors", LmConfig::released(), at::kCPU, at::kFloat),
               Error);
}

TEST(LmWeights, EightStepDepformerIsExpanded) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  const std::string path = write_eight_step_checkpoint(test::temp_dir());
  auto w = LmWeights::load(path, fixture_config(), at::kCPU, at::kFloat);
  const auto &l = w->depformer[1];
  for (int64_t k = 8; k < 16; ++k) {
    EXPECT_TRUE(at::equal(l.in_proj[k].weight, l.in_proj[k - 8].weight));
    EXPECT_TRUE(at::equal(l.out_proj[k].weight, l.out_proj[k - 8].weight));
    EXPECT_TRUE(at::equal(l.mlp_in[k].weight, l.mlp_in[k - 8].weight));
    EXPECT_TRUE(at::equal(w->linears[k].weight, w->linears[k - 8].weight));
    EXPECT_TRUE(at::equal(w->depformer_in[k].weight, w->depformer_in[k - 8].weight));
  }
  EXPECT_TRUE(at::equal(w->depformer_emb[14], w->depformer_emb[6]));
  EXPECT_EQ(w->depformer_emb[7].abs().sum().item<float>(), 0.0f);

  // Steps 0-7 are the fixture's, and agent outputs never depend on 8-15: the
  // conversation's text and agent tokens are the fixture's.
  auto model = std::make_shared<const LmModel>(w);
  test::LmIo io = test::lm_io();
  Conversation conv(model, test::greedy());
  at::Tensor out = test::run_fixture_conversation(conv, io, test::fixture_prompt(io, model->config()));
  EXPECT_TRUE(at::equal(out.narrow(1, 0, 9), io.out_tokens.narrow(1, 0, 9)));
}
