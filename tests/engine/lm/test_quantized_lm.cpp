// The LM with 8-bit linear weights: the same inputs give logits close to the
// float model's (a bound that a wrong scale or a transposed weight breaks),
// mostly the same greedy tokens, and the weights take fewer bytes.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "lm/conversation.h"
#include "lm/random_weights.h"
#include "lm_fixture.h"
#include "test_util.h"

using namespace personaplex;
using namespace personaplex::lm;

namespace {

constexpr double kScale = 0.1;  // weights large enough that logits spread

std::shared_ptr<const LmModel> random_model(WeightFormat format) {
  return std::make_shared<const LmModel>(
      random_lm_weights(test::small_lm_config(), at::Device(at::kCPU), at::kFloat, 3, kScale, format));
}

// Logits of `steps` model steps whose every token is given (the same columns
// for any model): text [steps, text_out], audio [steps, dep_q, card].
struct Logits {
  at::Tensor text, audio;
};

Logits forced_logits(const std::shared_ptr<const LmModel> &model, int64_t steps) {
  ConversationOptions o;
  o.keep_logits = true;
  o.full_depformer = true;
  o.sampling.greedy = true;
  Conversation conv(model, o);
  const LmConfig &c = model->config();
  std::mt19937_64 rng(11);
  auto draw = [&](int64_t n) { return int64_t(rng() % uint64_t(n)); };
  std::vector<at::Tensor> text, audio;
  while (conv.model_steps() < steps) {
    StepTokens t;
    t.text = draw(c.text_card);
    for (int64_t k = 0; k < kAudioCodebooks; ++k) t.agent.push_back(draw(c.card));
    for (int64_t k = 0; k < c.user_codebooks(); ++k) t.user.push_back(draw(c.card));
    const int64_t before = conv.model_steps();
    conv.step(t);
    if (conv.model_steps() == before) continue;  // the first call only fills the ring
    text.push_back(conv.last_text_logits().clone());
    audio.push_back(conv.last_audio_logits().clone());
  }
  return {at::stack(text), at::stack(audio)};
}

// Largest and mean error over the reference's RMS, and the fraction of
// argmax decisions that agree.
struct LogitError {
  double max_rel, mean_rel, agree;
};

LogitError compare(const at::Tensor &got, const at::Tensor &ref) {
  const double rms = ref.pow(2).mean().sqrt().item<double>();
  at::Tensor err = (got - ref).abs();
  return {err.max().item<double>() / rms, err.mean().item<double>() / rms,
          got.argmax(-1).eq(ref.argmax(-1)).to(at::kFloat).mean().item<double>()};
}

// Bounds an int8 model of this config stays within (measured: max 0.1, mean
// 0.014, agreement 0.95); a scale 1.5 times too large in one layer gives a
// mean of 0.2, a transposed depformer weight a max of 3.
constexpr double kMaxRel = 0.25, kMeanRel = 0.03, kAgree = 0.85;

bool within_bounds(const Logits &got, const Logits &ref) {
  for (auto [g, r] : {std::pair{got.text, ref.text}, std::pair{got.audio, ref.audio}}) {
    LogitError e = compare(g, r);
    if (e.max_rel > kMaxRel || e.mean_rel > kMeanRel || e.agree < kAgree) return false;
  }
  return true;
}

// Bytes the linear weights take, in whatever format they are stored.
int64_t linear_bytes(const LmWeights &w) {
  int64_t n = w.text_linear.nbytes();
  for (const auto &l : w.transformer.layers)
    n += l.in_proj.nbytes() + l.out_proj.nbytes() + l.mlp_in.nbytes() + l.mlp_out.nbytes();
  for (const auto &l : w.depformer)
    for (const auto *v : {&l.in_proj, &l.out_proj, &l.mlp_in, &l.mlp_out})
      for (const auto &lw : *v) n += lw.nbytes();
  for (const auto &lw : w.depformer_in) n += lw.nbytes();
  for (const auto &lw : w.linears) n += lw.nbytes();
  return n;
}

}  // namespace

TEST(QuantizedLm, Int8LogitsAreCloseToTheFloatModels) {
  const int64_t steps = 12;
  Logits ref = forced_logits(random_model(WeightFormat::kAsLoaded), steps);
  Logits got = forced_logits(random_model(WeightFormat::kInt8), steps);
  ASSERT_EQ(got.audio.sizes(), ref.audio.sizes());
  for (auto [g, r] : {std::pair{got.text, ref.text}, std::pair{got.audio, ref.audio}}) {
    LogitError e = compare(g, r);
    EXPECT_LT(e.max_rel, kMaxRel);
    EXPECT_LT(e.mean_rel, kMeanRel);
    EXPECT_GE(e.agree, kAgree);
    EXPECT_GT(e.mean_rel, 0.0);  // it is quantized
  }
}

TEST(QuantizedLm, TheBoundCatchesAWrongScaleOrATransposedWeight) {
  const int64_t steps = 8;
  auto int8 = random_model(WeightFormat::kInt8);
  Logits ref = forced_logits(random_model(WeightFormat::kAsLoaded), steps);
  ASSERT_TRUE(within_bounds(forced_logits(int8, steps), ref));

  auto scaled = std::make_shared<LmWeights>(int8->weights());
  auto &attn_out = scaled->transformer.layers[1].out_proj;
  attn_out.scale = attn_out.scale * 1.5;
  EXPECT_FALSE(within_bounds(forced_logits(std::make_shared<const LmModel>(scaled), steps), ref));

  auto transposed = std::make_shared<LmWeights>(int8->weights());
  auto &square = transposed->depformer[0].out_proj[0];  // [d, d]
  square.weight = square.weight.t().contiguous();
  EXPECT_FALSE(within_bounds(forced_logits(std::make_shared<const LmModel>(transposed), steps), ref));
}

TEST(QuantizedLm, LoadingQuantizesEveryLinearWeight) {
  const LmConfig c = test::small_lm_config();
  const std::string path = test::temp_dir() + "/lm.safetensors";
  write_random_lm_weights(path, c, at::kFloat, 5, kScale);
  auto f32 = LmWeights::load(path, c, at::kCPU, at::kFloat);
  auto int8 = LmWeights::load(path, c, at::kCPU, at::kFloat, WeightFormat::kInt8);
  EXPECT_EQ(int8->format, WeightFormat::kInt8);
  const LmWeights &q = *int8;
  for (const nn::LinearWeight *l : {&q.text_linear, &q.transformer.layers[1].mlp_out, &q.depformer[1].in_proj[15],
                                    &q.depformer[0].mlp_in[7], &q.depformer_in[3], &q.linears[15]}) {
    EXPECT_EQ(l->weight.scalar_type(), at::kChar);
    EXPECT_TRUE(l->quantized());
  }
  EXPECT_EQ(int8->emb.scalar_type(), at::kFloat);
  EXPECT_EQ(int8->depformer_text_emb.scalar_type(), at::kFloat);
  // Only the linear weights shrink: a quarter of fp32, plus a scale per row.
  const int64_t saved = linear_bytes(*f32) - linear_bytes(*int8);
  EXPECT_EQ(int8->nbytes(), f32->nbytes() - saved);
  EXPECT_GT(saved, linear_bytes(*f32) * 7 / 10);
  // Loaded or built in memory, int8 models agree with the float one.
  Logits ref = forced_logits(std::make_shared<const LmModel>(f32), 8);
  EXPECT_TRUE(within_bounds(forced_logits(std::make_shared<const LmModel>(int8), 8), ref));
}

TEST(QuantizedLm, Fp8WhereTheLibtorchHasFloat8) {
  if (!nn::float8_available()) {
    EXPECT_THROW(random_model(WeightFormat::kFp8), Error);
    GTEST_SKIP() << "this libtorch has no float8";
  }
  const int64_t steps = 8;
  Logits ref = forced_logits(random_model(WeightFormat::kAsLoaded), steps);
  Logits got = forced_logits(random_model(WeightFormat::kFp8), steps);
  // e4m3 keeps 3 mantissa bits where int8 keeps about 7: looser bounds.
  for (auto [g, r] : {std::pair{got.text, ref.text}, std::pair{got.audio, ref.audio}}) {
    LogitError e = compare(g, r);
    EXPECT_LT(e.max_rel, 4 * kMaxRel);
    EXPECT_LT(e.mean_rel, 4 * kMeanRel);
    EXPECT_GE(e.agree, 0.7);
  }
}

TEST(QuantizedLm, UnknownFormatNameIsAnError) {
  try {
    nn::parse_weight_format("float8");
    FAIL() << "no error";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("expected bf16, int8 or fp8"), std::string::npos) << e.what();
  }
}
