// The fp8 KV cache: the e4m3 codec's values and rounding, and conversations
// whose caches hold fp8 bytes staying close to those of the model's dtype.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "core/error.h"
#include "lm/conversation.h"
#include "lm/kv_format.h"
#include "lm/random_weights.h"
#include "lm_fixture.h"
#include "test_util.h"

using namespace personaplex;
using namespace personaplex::lm;

namespace {

// Every code but the two NaNs, in code order.
std::vector<int64_t> finite_codes() {
  std::vector<int64_t> codes;
  for (int64_t c = 0; c < 256; ++c)
    if ((c & 0x7f) != 0x7f) codes.push_back(c);
  return codes;
}

at::Tensor decode_codes(const std::vector<int64_t> &codes) {
  at::Tensor bytes = at::tensor(codes, at::kLong).to(at::kByte).view({1, -1});
  return fp8_decode(bytes, at::ones({1}), at::kFloat).view({-1});
}

}  // namespace

TEST(Fp8Kv, FormatNames) {
  for (const char *name : {"auto", "bf16", "model"}) EXPECT_EQ(parse_kv_format(name), KvFormat::kModelDtype);
  EXPECT_EQ(parse_kv_format("fp8"), KvFormat::kFp8);
  for (KvFormat f : {KvFormat::kModelDtype, KvFormat::kFp8}) EXPECT_EQ(parse_kv_format(kv_format_name(f)), f);
  try {
    parse_kv_format("int4");
    ADD_FAILURE() << "int4 accepted";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("int4"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("fp8"), std::string::npos);
  }
}

TEST(Fp8Kv, CodesAreE4m3) {
  const at::Tensor v = decode_codes({0x00, 0x01, 0x07, 0x08, 0x38, 0x39, 0x7e, 0xb8, 0xfe, 0x80});
  const std::vector<float> want = {0.0f, std::ldexp(1.0f, -9), std::ldexp(7.0f, -9), std::ldexp(1.0f, -6), 1.0f,
                                   1.125f, 448.0f, -1.0f, -448.0f, 0.0f};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(v[int64_t(i)].item<float>(), want[i]) << "value " << i;
  // Positive codes increase with their value.
  std::vector<int64_t> positive;
  for (int64_t c = 0; c < 0x7f; ++c) positive.push_back(c);
  const at::Tensor p = decode_codes(positive);
  EXPECT_TRUE((p.narrow(0, 1, p.size(0) - 1) > p.narrow(0, 0, p.size(0) - 1)).all().item<bool>());
}

TEST(Fp8Kv, EveryValueEncodesToItsCode) {
  // One vector holding every finite value, so that its scale is 448 / 448 = 1.
  const std::vector<int64_t> codes = finite_codes();
  const at::Tensor values = decode_codes(codes);
  const Fp8Vectors e = fp8_encode(values.view({1, -1}));
  EXPECT_EQ(e.scales.item<float>(), 1.0f);
  const at::Tensor got = e.bytes.view({-1}).to(at::kLong);
  const at::Tensor want = at::tensor(codes, at::kLong);
  // +0 and -0 are one value: both encode to +0.
  const at::Tensor same = (got == want) | ((want == 0x80) & (got == 0));
  EXPECT_TRUE(same.all().item<bool>());
}

TEST(Fp8Kv, RoundsToTheNearestValueOfTheVectorsScale) {
  at::manual_seed(3);
  at::Tensor x = at::randn({5, 7, 64}) * at::linspace(0.01, 30.0, 7).view({1, 7, 1});
  x[2][3].zero_();
  const Fp8Vectors e = fp8_encode(x);
  ASSERT_EQ(e.bytes.scalar_type(), at::kByte);
  ASSERT_EQ(e.bytes.sizes(), x.sizes());
  ASSERT_EQ(e.scales.sizes(), (std::vector<int64_t>{5, 7}));
  EXPECT_TRUE(at::allclose(e.scales, std::get<0>(x.abs().max(-1)) / 448.0, 1e-6, 0.0));
  const at::Tensor back = fp8_decode(e.bytes, e.scales, at::kFloat);
  // Half a step: 2^-4 of the value, or 2^-10 of the scale among subnormals.
  const at::Tensor bound = x.abs() * 0.0625 + e.scales.unsqueeze(-1) * std::ldexp(1.0, -10);
  EXPECT_TRUE((back - x).abs().le(bound * (1 + 1e-6)).all().item<bool>());
  EXPECT_GT((back - x).abs().max().item<float>(), 0.0f);  // really rounded
  // Each vector's largest magnitude is exact; a zero vector stays zero.
  EXPECT_TRUE(at::allclose(std::get<0>(back.abs().max(-1)), std::get<0>(x.abs().max(-1)), 1e-6, 0.0));
  EXPECT_EQ(e.scales[2][3].item<float>(), 0.0f);
  EXPECT_EQ(back[2][3].abs().max().item<float>(), 0.0f);
}

// A conversation whose cache holds fp8 bytes gives logits close to those of
// a cache in the model's dtype for the same tokens (every token given, so
// that both see the same history).
TEST(Fp8Kv, ConversationStaysCloseToTheModelDtypeCache) {
  const LmConfig c = test::small_lm_config();
  auto plain = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 3, 0.1));
  auto fp8 = plain->with_kv_format(KvFormat::kFp8);
  EXPECT_EQ(&fp8->weights(), &plain->weights());  // the weights are shared
  ConversationOptions o = test::greedy();
  o.keep_logits = true;
  Conversation a(plain, o), b(fp8, o);
  const auto &ka = a.temporal_state().kv.layer(0), &kb = b.temporal_state().kv.layer(0);
  EXPECT_EQ(kb.keys.scalar_type(), at::kByte);
  EXPECT_EQ(kb.keys.sizes(), ka.keys.sizes());
  EXPECT_EQ(kb.key_scales.sizes(), ka.keys.sizes().slice(0, 3));
  double worst = 0.0, sum = 0.0;
  int64_t steps = 0, agree = 0;
  for (int64_t t = 0; t < 60; ++t) {  // past the context: the ring rolls over
    StepTokens tokens;
    tokens.text = (t * 7) % c.text_card;
    for (int64_t k = 0; k < kAudioCodebooks; ++k) tokens.agent.push_back((t * 13 + k * 5) % c.card);
    for (int64_t k = 0; k < c.user_codebooks(); ++k) tokens.user.push_back((t * 11 + k * 3) % c.card);
    const int64_t before = a.model_steps();
    a.step(tokens);
    b.step(tokens);
    if (a.model_steps() == before) continue;
    const at::Tensor la = a.last_text_logits(), lb = b.last_text_logits();
    const double rms = la.pow(2).mean().sqrt().item<double>();
    const double err = (la - lb).abs().max().item<double>() / rms;
    worst = std::max(worst, err);
    sum += err;
    agree += la.argmax().item<int64_t>() == lb.argmax().item<int64_t>();
    ++steps;
  }
  ASSERT_GT(steps, 40);
  EXPECT_GT(worst, 0.0);  // the cache really is quantized
  EXPECT_LT(sum / steps, 0.08);  // e4m3 keeps 3 mantissa bits of each key and value
  EXPECT_LT(worst, 0.25);
  EXPECT_GE(agree, steps * 9 / 10);
}
