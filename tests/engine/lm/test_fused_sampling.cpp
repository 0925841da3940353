// The one-launch top-k sampling kernel (lm/fused_sampling.h) against
// libtorch's softmax, sorted top-k and exponential race with the same noise.
// Off CUDA, or in a build without the kernels, it declines and
// sample_with_noise keeps libtorch's path.
#include <gtest/gtest.h>

#include <vector>

#include "lm/fused_sampling.h"
#include "lm/sampling.h"

using namespace personaplex::lm;

namespace {

// sample_with_noise's libtorch path, written out.
at::Tensor libtorch_sample(const at::Tensor &logits, double temperature, int64_t top_k, const at::Tensor &noise) {
  at::Tensor probs = at::softmax(logits / temperature, -1);
  if (race_size(logits.size(-1), top_k) == logits.size(-1)) return (probs / noise).argmax(-1);
  auto top = at::topk(probs, top_k, -1);
  auto in_order = std::get<1>(top).sort(-1);  // the draws go with the candidates in token order
  at::Tensor pick = (std::get<0>(top).gather(-1, std::get<1>(in_order)) / noise).argmax(-1, /*keepdim=*/true);
  return std::get<0>(in_order).gather(-1, pick).squeeze(-1);
}

bool have_kernel() {
  if (!at::hasCUDA()) return false;
  const auto f = at::TensorOptions(at::kCUDA).dtype(at::kFloat);
  return fused_sample_top_k(at::zeros({1, 4}, f), 1.0, 2, at::ones({1, 2}, f)).has_value();
}

at::Tensor exp_noise(std::vector<int64_t> shape, int64_t seed) {
  at::Generator g = make_generator(at::kCPU, uint64_t(seed));
  return at::empty(shape, at::kFloat).exponential_(1.0, g).to(at::kCUDA);
}

}  // namespace

TEST(FusedSampling, DeclinesOffCudaAndOutOfRange) {
  EXPECT_FALSE(fused_sample_top_k(at::randn({2, 8}), 0.8, 4, at::ones({2, 4})));
  if (!have_kernel()) GTEST_SKIP() << "no CUDA kernels";
  const auto f = at::TensorOptions(at::kCUDA).dtype(at::kFloat);
  EXPECT_FALSE(fused_sample_top_k(at::randn({2, 8}, f), 0.8, 4, at::ones({2, 5}, f)));  // noise of another size
  EXPECT_FALSE(fused_sample_top_k(at::randn({2, 8}, f).to(at::kBFloat16), 0.8, 4, at::ones({2, 4}, f)));
  EXPECT_FALSE(fused_sample_top_k(at::randn({1, 9000}, f), 0.8, 5000, at::ones({1, 5000}, f)));  // k past its limit
}

// The vocabularies and k of the released model (audio 2048 / 250, text
// 32000 / 25), a whole-vocabulary race, k = V - 1, batched rows.
TEST(FusedSampling, CudaDrawsWhatLibtorchDraws) {
  if (!have_kernel()) GTEST_SKIP() << "no CUDA kernels";
  struct Case {
    int64_t rows, vocab, k;
    double temperature;
  };
  const std::vector<Case> cases = {{1, 2048, 250, 0.8}, {64, 2048, 250, 0.8}, {1, 32000, 25, 0.7},
                                   {3, 32001, 25, 0.7}, {2, 100, 0, 1.0},     {2, 100, 100, 1.3},
                                   {5, 37, 36, 0.5},    {4, 2048, 1, 0.8},    {2, 5000, 4096, 0.9}};
  int64_t seed = 1;
  for (const Case &c : cases) {
    SCOPED_TRACE(testing::Message() << c.rows << "x" << c.vocab << " k " << c.k);
    at::Tensor logits = (at::randn({c.rows, c.vocab}) * 3.0).to(at::kCUDA);
    at::Tensor noise = exp_noise({c.rows, race_size(c.vocab, c.k)}, seed++);
    auto fused = fused_sample_top_k(logits, c.temperature, c.k, noise);
    ASSERT_TRUE(fused);
    EXPECT_EQ(fused->sizes(), at::IntArrayRef({c.rows}));
    EXPECT_TRUE(at::equal(fused->cpu(), libtorch_sample(logits, c.temperature, c.k, noise).cpu()));
  }
}

// The noise at place r decides: with every other draw huge, the r-th of
// the 250 most probable tokens in token order wins.
TEST(FusedSampling, CudaNoisePairsWithTokenOrder) {
  if (!have_kernel()) GTEST_SKIP() << "no CUDA kernels";
  at::Tensor logits = at::randn({1, 2048}) * 2.0;
  const at::Tensor in_order = std::get<0>(std::get<1>(logits.topk(250, -1)).sort(-1));
  for (int64_t r : {0, 1, 17, 249}) {
    at::Tensor noise = at::full({1, 250}, 1e30f);
    noise[0][r] = 1e-30f;
    auto token = fused_sample_top_k(logits.to(at::kCUDA), 0.8, 250, noise.to(at::kCUDA));
    ASSERT_TRUE(token);
    EXPECT_EQ(token->item<int64_t>(), in_order[0][r].item<int64_t>()) << "place " << r;
  }
}

// Equal logits (bf16 logits are full of them): the token drawn is one of
// the k most probable, and the draw is the same every time.
TEST(FusedSampling, CudaTiesStayWithinTopK) {
  if (!have_kernel()) GTEST_SKIP() << "no CUDA kernels";
  at::Tensor logits = at::randint(0, 12, {8, 2048}).to(at::kFloat).to(at::kCUDA);
  at::Tensor noise = exp_noise({8, 250}, 5);
  auto a = fused_sample_top_k(logits, 0.8, 250, noise), b = fused_sample_top_k(logits, 0.8, 250, noise);
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(at::equal(*a, *b));
  const at::Tensor kth = std::get<0>(logits.topk(250, -1)).select(-1, 249);
  const at::Tensor picked = logits.gather(-1, a->unsqueeze(-1)).squeeze(-1);
  EXPECT_TRUE((picked >= kth).all().item<bool>());
  // Among equal logits at the k-th place the lower tokens are taken: with
  // only the first place's draw small, the lowest token at or above the
  // k-th logit wins.
  at::Tensor first = at::full({8, 250}, 1e30f).to(at::kCUDA);
  first.select(-1, 0).fill_(1e-30f);
  auto top = fused_sample_top_k(logits, 0.8, 250, first);
  ASSERT_TRUE(top);
  const at::Tensor expected = (logits >= kth.unsqueeze(-1)).to(at::kFloat).argmax(-1);
  EXPECT_TRUE(at::equal(*top, expected));
}
