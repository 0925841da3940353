#include <gtest/gtest.h>

#include "lm/sampling.h"

using namespace personaplex::lm;

TEST(Sampling, GreedyIsArgmax) {
  auto g = make_generator(at::kCPU, 1);
  at::Tensor logits = at::tensor({0.1f, 2.0f, -1.0f, 1.9f}).view({1, 4});
  EXPECT_EQ(sample_token(logits, true, 0.8, 250, g).item<int64_t>(), 1);
  EXPECT_EQ(sample_token(logits, false, 0.0, 250, g).item<int64_t>(), 1);  // T 0: greedy
  EXPECT_EQ(sample_token(logits, false, 0.7, 1, g).item<int64_t>(), 1);   // top-1
}

TEST(Sampling, SameSeedSameTokens) {
  at::Tensor logits = at::randn({1, 2048}, at::TensorOptions().dtype(at::kFloat));
  auto a = make_generator(at::kCPU, 42), b = make_generator(at::kCPU, 42), c = make_generator(at::kCPU, 43);
  std::vector<int64_t> ta, tb, tc;
  for (int i = 0; i < 50; ++i) {
    ta.push_back(sample_token(logits, false, 0.8, 250, a).item<int64_t>());
    tb.push_back(sample_token(logits, false, 0.8, 250, b).item<int64_t>());
    tc.push_back(sample_token(logits, false, 0.8, 250, c).item<int64_t>());
  }
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);
}

TEST(Sampling, FollowsTheTemperedDistributionWithinTopK) {
  // p ~ softmax(logits / T) restricted to the top k.
  at::Tensor logits = at::log(at::tensor({0.05f, 0.4f, 0.1f, 0.3f, 0.15f})).view({1, 5});
  auto g = make_generator(at::kCPU, 7);
  const int n = 20000;
  std::vector<int> counts(5, 0);
  for (int i = 0; i < n; ++i) ++counts[size_t(sample_token(logits, false, 1.0, 3, g).item<int64_t>())];
  EXPECT_EQ(counts[0], 0);
  EXPECT_EQ(counts[2], 0);  // outside the top 3
  const double z = 0.4 + 0.3 + 0.15;
  EXPECT_NEAR(counts[1] / double(n), 0.4 / z, 0.015);
  EXPECT_NEAR(counts[3] / double(n), 0.3 / z, 0.015);
  EXPECT_NEAR(counts[4] / double(n), 0.15 / z, 0.015);
}

TEST(Sampling, BatchedLogits) {
  auto g = make_generator(at::kCPU, 3);
  at::Tensor logits = at::zeros({2, 3, 10});
  logits.select(2, 4).fill_(50.0);
  at::Tensor t = sample_token(logits, false, 0.8, 5, g);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE((t == 4).all().item<bool>());
}

// Rounding (another BLAS, a batch of another size) can reorder two nearly
// equal probabilities: the same draws must still pick the same token, as
// batched and alone conversations are held to. Two tokens of nearly equal
// logits, the most probable, in either order.
TEST(Sampling, DrawsDoNotFollowRoundingOrder) {
  at::Tensor base = at::full({1, 64}, -4.0f);
  at::Tensor a = base.clone(), b = base.clone();
  a[0][3] = 2.0f, a[0][40] = 2.0f + 2e-6f;  // token 40 first in probability
  b[0][3] = 2.0f + 2e-6f, b[0][40] = 2.0f;  // token 3 first
  int flips = 0, either = 0;
  for (int64_t seed = 0; seed < 200; ++seed) {
    auto g = make_generator(at::kCPU, uint64_t(seed));
    at::Tensor noise = at::empty({1, 8}).exponential_(1.0, g);
    const int64_t ta = sample_with_noise(a, false, 0.8, 8, noise).item<int64_t>();
    const int64_t tb = sample_with_noise(b, false, 0.8, 8, noise).item<int64_t>();
    flips += ta != tb;
    either += ta == 3 || ta == 40;
  }
  EXPECT_EQ(flips, 0);
  EXPECT_GT(either, 100);  // the two decide most races
}
