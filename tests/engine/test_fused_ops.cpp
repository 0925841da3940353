// The one-launch CUDA kernels of nn/fused_ops.h against the libtorch
// arithmetic they replace (lm/ops.cpp, lm/temporal_ops.cpp, nn/rope.cpp),
// on every layout the engine gives them. Off CUDA, or in a build without
// the kernels, they decline and the callers keep libtorch's path.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "nn/attention.h"
#include "nn/fused_ops.h"
#include "nn/kv_cache.h"
#include "nn/rope.h"
#include "test_util.h"

using namespace personaplex;

namespace {

at::Tensor libtorch_rms_norm(const at::Tensor &x, const at::Tensor &alpha, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor var = xf.pow(2).mean(-1, /*keepdim=*/true) + eps;
  return (xf * (alpha * at::rsqrt(var))).to(x.scalar_type());
}

at::Tensor libtorch_silu_gate(const at::Tensor &h) {
  at::Tensor halves = h.unflatten(-1, {2, -1});
  return at::silu(halves.select(-2, 0)) * halves.select(-2, 1);
}

at::Tensor libtorch_rotary(const at::Tensor &x, const at::Tensor &cos, const at::Tensor &sin) {
  at::Tensor pairs = x.to(at::kFloat).unflatten(-1, {-1, 2});
  at::Tensor re = pairs.select(-1, 0), im = pairs.select(-1, 1);
  return at::stack({re * cos - im * sin, re * sin + im * cos}, -1).flatten(-2).to(x.scalar_type());
}

// Largest difference in units of the larger magnitude's bf16 (or fp32) step.
double ulps(const at::Tensor &a, const at::Tensor &b) {
  const double step = a.scalar_type() == at::kBFloat16 ? 1.0 / 128 : 1.0 / (1 << 23);
  at::Tensor af = a.to(at::kDouble), bf = b.to(at::kDouble);
  at::Tensor scale = at::maximum(af.abs(), bf.abs()).clamp_min(1e-30);
  return ((af - bf).abs() / (scale * step)).max().item<double>();
}

// Largest difference relative to the largest magnitude of b.
double relative_error(const at::Tensor &a, const at::Tensor &b) {
  at::Tensor af = a.to(at::kDouble), bf = b.to(at::kDouble);
  return ((af - bf).abs().max() / bf.abs().max().clamp_min(1e-30)).item<double>();
}

bool have_kernels() {
  if (!at::hasCUDA()) return false;
  at::Tensor h = at::zeros({1, 4}, at::TensorOptions(at::kCUDA));
  return nn::fused_silu_gate(h).has_value();
}

}  // namespace

TEST(FusedOps, DeclineOffCuda) {
  const at::Tensor x = at::randn({2, 8});
  EXPECT_FALSE(nn::fused_rms_norm(x, at::ones({8}), 1e-8));
  EXPECT_FALSE(nn::fused_add_rms_norm(x, x, at::ones({8}), 1e-8));
  EXPECT_FALSE(nn::fused_step_attention(at::randn({1, 1, 24}), at::zeros({1, 2, 4, 4}), at::zeros({1, 2, 4, 4}), 0, 0));
  EXPECT_FALSE(nn::fused_silu_gate(x));
  EXPECT_FALSE(nn::fused_rotary(x, at::ones({4}), at::zeros({4})));
  EXPECT_FALSE(nn::fused_layer_norm(x, x, at::ones({8}), at::ones({8}), at::zeros({8}), 1e-5));
  EXPECT_FALSE(nn::ring_attention_takes(x, 2, 2, 4, 8));
}

TEST(FusedOps, CudaRmsNormIsLibtorchs) {
  if (!have_kernels()) GTEST_SKIP() << "no CUDA device, or a build without the kernels";
  at::manual_seed(11);
  for (const at::ScalarType dtype : {at::kBFloat16, at::kFloat}) {
    for (const std::vector<int64_t> &shape : std::vector<std::vector<int64_t>>{{1, 1, 4096}, {3, 5, 1024}, {2, 7}, {64, 1, 512}}) {
      SCOPED_TRACE(std::string(at::toString(dtype)) + " dim " + std::to_string(shape.back()));
      const at::TensorOptions cuda = at::TensorOptions(at::kCUDA).dtype(dtype);
      const at::Tensor x = at::randn(shape, cuda) * 3;
      const at::Tensor alpha = at::rand({1, 1, shape.back()}, at::TensorOptions(at::kCUDA)) + 0.5;
      for (const double eps : {1e-8, 1e-5}) {
        const std::optional<at::Tensor> y = nn::fused_rms_norm(x, alpha, eps);
        ASSERT_TRUE(y);
        ASSERT_EQ(y->sizes(), x.sizes());
        ASSERT_EQ(y->scalar_type(), dtype);
        // Sums in another order: a rounding apart at most.
        EXPECT_LE(ulps(*y, libtorch_rms_norm(x, alpha, eps)), dtype == at::kBFloat16 ? 1.0 : 64.0);
      }
    }
  }
  // A row of zeros is eps's root, not a division by zero.
  const at::Tensor zeros = at::zeros({1, 64}, at::TensorOptions(at::kCUDA));
  EXPECT_TRUE(at::equal(*nn::fused_rms_norm(zeros, at::ones({64}, zeros.options()), 1e-8), zeros));
  // Not fp32 weights, or not contiguous: declined.
  const at::Tensor x = at::randn({4, 64}, at::TensorOptions(at::kCUDA));
  EXPECT_FALSE(nn::fused_rms_norm(x, at::ones({64}, x.options().dtype(at::kBFloat16)), 1e-8));
  EXPECT_FALSE(nn::fused_rms_norm(x.t(), at::ones({4}, x.options()), 1e-8));
}

TEST(FusedOps, CudaAddRmsNormIsTheSumNormed) {
  if (!have_kernels()) GTEST_SKIP() << "no CUDA device, or a build without the kernels";
  at::manual_seed(14);
  for (const at::ScalarType dtype : {at::kBFloat16, at::kFloat}) {
    SCOPED_TRACE(at::toString(dtype));
    const at::TensorOptions cuda = at::TensorOptions(at::kCUDA).dtype(dtype);
    const at::Tensor x = at::randn({3, 1, 1024}, cuda), update = at::randn({3, 1, 1024}, cuda) * 0.1;
    const at::Tensor alpha = at::rand({1, 1, 1024}, at::TensorOptions(at::kCUDA)) + 0.5;
    const std::optional<nn::AddNormed> r = nn::fused_add_rms_norm(x, update, alpha, 1e-8);
    ASSERT_TRUE(r);
    // The sum rounded as libtorch's addition rounds it, and normed from that.
    const at::Tensor sum = x + update;
    EXPECT_TRUE(at::equal(r->sum, sum));
    EXPECT_LE(ulps(r->normed, libtorch_rms_norm(sum, alpha, 1e-8)), dtype == at::kBFloat16 ? 1.0 : 64.0);
    EXPECT_FALSE(nn::fused_add_rms_norm(x, update.to(at::kDouble), alpha, 1e-8));  // mixed dtypes
  }
}

TEST(FusedOps, CudaStepAttentionIsLibtorchs) {
  if (!have_kernels()) GTEST_SKIP() << "no CUDA device, or a build without the kernels";
  at::manual_seed(15);
  for (const at::ScalarType dtype : {at::kBFloat16, at::kFloat}) {
    const at::TensorOptions cuda = at::TensorOptions(at::kCUDA).dtype(dtype);
    for (const auto &[B, H, D, S] : std::vector<std::array<int64_t, 4>>{{1, 16, 64, 8}, {5, 4, 96, 16}, {2, 2, 16, 3}}) {
      const at::Tensor keys = at::randn({B, H, S, D}, cuda), values = at::randn({B, H, S, D}, cuda);
      for (int64_t slot = 0; slot < S; ++slot) {
        const int64_t first = std::max<int64_t>(0, slot - (S - 2));
        SCOPED_TRACE(std::string(at::toString(dtype)) + " head " + std::to_string(D) + " slot " + std::to_string(slot));
        const at::Tensor qkv = at::randn({B, 1, 3 * H * D}, cuda);
        const at::Tensor k_want = keys.clone(), v_want = values.clone();
        const at::Tensor parts = qkv.view({B, 3, H, 1, D});
        k_want.narrow(2, slot, 1).copy_(parts.select(1, 1));
        v_want.narrow(2, slot, 1).copy_(parts.select(1, 2));
        // Softmax attention in fp32 over the window.
        const at::Tensor kw = k_want.narrow(2, first, slot + 1 - first).to(at::kFloat);
        const at::Tensor vw = v_want.narrow(2, first, slot + 1 - first).to(at::kFloat);
        const at::Tensor s = at::matmul(parts.select(1, 0).to(at::kFloat), kw.transpose(-2, -1)) / std::sqrt(double(D));
        const at::Tensor want = at::matmul(at::softmax(s, -1), vw).transpose(1, 2).reshape({B, 1, H * D});
        const std::optional<at::Tensor> y = nn::fused_step_attention(qkv, keys, values, slot, first);
        ASSERT_TRUE(y);
        ASSERT_EQ(y->sizes(), want.sizes());
        EXPECT_TRUE(at::equal(keys, k_want));  // written at its slot, nothing else touched
        EXPECT_TRUE(at::equal(values, v_want));
        const double err = ((y->to(at::kFloat) - want).abs().max() / want.abs().max()).item<double>();
        EXPECT_LT(err, dtype == at::kBFloat16 ? 1e-2 : 1e-5);
      }
    }
  }
  const at::Tensor keys = at::zeros({1, 2, 4, 8}, at::TensorOptions(at::kCUDA));
  EXPECT_FALSE(nn::fused_step_attention(at::randn({1, 1, 48}, keys.options()), keys, keys.clone(), 4, 0));  // no slot 4
}

TEST(FusedOps, CudaSiluGateIsLibtorchs) {
  if (!have_kernels()) GTEST_SKIP() << "no CUDA device, or a build without the kernels";
  at::manual_seed(12);
  for (const at::ScalarType dtype : {at::kBFloat16, at::kFloat}) {
    for (const std::vector<int64_t> &shape : std::vector<std::vector<int64_t>>{{1, 1, 22528}, {64, 1, 5632}, {3, 10}}) {
      SCOPED_TRACE(std::string(at::toString(dtype)) + " width " + std::to_string(shape.back()));
      const at::Tensor h = at::randn(shape, at::TensorOptions(at::kCUDA).dtype(dtype)) * 4;
      const std::optional<at::Tensor> y = nn::fused_silu_gate(h);
      ASSERT_TRUE(y);
      const at::Tensor want = libtorch_silu_gate(h);
      ASSERT_EQ(y->sizes(), want.sizes());
      // Rounded where libtorch rounds: equal, or an exponential's last bit apart.
      EXPECT_LE(ulps(*y, want), 1.0);
      EXPECT_GE(y->eq(want).to(at::kFloat).mean().item<double>(), 0.99);
    }
  }
  EXPECT_FALSE(nn::fused_silu_gate(at::randn({2, 7}, at::TensorOptions(at::kCUDA))));  // no halves
}

TEST(FusedOps, CudaRotaryIsLibtorchs) {
  if (!have_kernels()) GTEST_SKIP() << "no CUDA device, or a build without the kernels";
  at::manual_seed(13);
  const at::TensorOptions f32 = at::TensorOptions(at::kCUDA);
  const int64_t H = 4, D = 16;
  for (const at::ScalarType dtype : {at::kBFloat16, at::kFloat}) {
    const at::TensorOptions cuda = f32.dtype(dtype);
    auto angles = [&](std::vector<int64_t> shape) { return at::rand(shape, f32) * 100; };
    struct Case {
      std::string name;
      at::Tensor x, angle;
    };
    std::vector<Case> cases;
    // One conversation's step: q and k of the projection [1, 1, 3, H, D] permuted to [3, 1, H, 1, D].
    cases.push_back({"step", at::randn({1, 1, 3, H, D}, cuda).permute({2, 0, 3, 1, 4}).narrow(0, 0, 2), angles({D / 2})});
    // Rows at their own positions: [2, R, H, 1, D] with [R, 1, 1, D / 2].
    cases.push_back({"rows", at::randn({5, 1, 3, H, D}, cuda).permute({2, 0, 3, 1, 4}).narrow(0, 0, 2), angles({5, 1, 1, D / 2})});
    // A prefilled chunk: [2, 1, H, T, D] with [T, D / 2].
    cases.push_back({"chunk", at::randn({1, 7, 3, H, D}, cuda).permute({2, 0, 3, 1, 4}).narrow(0, 0, 2), angles({7, D / 2})});
    // One query alone (the pinned prompt's), and Mimi's [B, H, T, D] with [B, 1, T, D / 2].
    cases.push_back({"query", at::randn({5, 1, 3, H, D}, cuda).permute({2, 0, 3, 1, 4})[0], angles({5, 1, 1, D / 2})});
    cases.push_back({"mimi", at::randn({2, 3, H, D}, cuda).transpose(1, 2), angles({2, 1, 3, D / 2})});
    for (const Case &c : cases) {
      SCOPED_TRACE(c.name + " " + std::string(at::toString(dtype)));
      const at::Tensor cos = at::cos(c.angle), sin = at::sin(c.angle);
      const std::optional<at::Tensor> y = nn::fused_rotary(c.x, cos, sin);
      ASSERT_TRUE(y);
      EXPECT_TRUE(y->is_contiguous());
      // The same products and sums, rounded one by one: the same values.
      EXPECT_TRUE(at::equal(*y, libtorch_rotary(c.x, cos, sin)));
    }
  }
  const at::Tensor x = at::randn({2, 3, D}, f32);
  EXPECT_FALSE(nn::fused_rotary(x, at::ones({5, D / 2}, f32), at::ones({5, D / 2}, f32)));  // does not broadcast
}

TEST(FusedOps, CudaLayerNormIsLibtorchs) {
  if (!have_kernels()) GTEST_SKIP() << "no CUDA device, or a build without the kernels";
  at::manual_seed(16);
  for (const at::ScalarType dtype : {at::kBFloat16, at::kFloat}) {
    const at::TensorOptions cuda = at::TensorOptions(at::kCUDA).dtype(dtype);
    for (const auto &[rows, dim] : std::vector<std::array<int64_t, 2>>{{2, 512}, {64, 512}, {3, 24}, {1, 1000}}) {
      SCOPED_TRACE(std::string(at::toString(dtype)) + " " + std::to_string(rows) + "x" + std::to_string(dim));
      const at::Tensor x = at::randn({rows, dim}, cuda), update = at::randn({rows, dim}, cuda);
      const at::Tensor scale = 0.01 * at::randn({dim}, cuda), weight = 1 + 0.1 * at::randn({dim}, cuda);
      const at::Tensor bias = 0.1 * at::randn({dim}, cuda);
      // The mean and variance are summed in another order than libtorch's
      // (Welford): an output near zero may round differently, so the error
      // is measured against the largest output, within two of its steps.
      const double tol = dtype == at::kBFloat16 ? 2.0 / 128 : 1e-5;
      for (const bool with_bias : {true, false}) {
        const at::Tensor b = with_bias ? bias : at::Tensor();
        // Without the residual: the norm alone.
        std::optional<nn::NormedSum> alone = nn::fused_layer_norm(x, {}, {}, weight, b, 1e-5);
        ASSERT_TRUE(alone);
        EXPECT_LE(relative_error(alone->normed, at::layer_norm(x, {dim}, weight, b, 1e-5)), tol);
        // With it: the sum rounded as libtorch's two launches round it, then normed.
        std::optional<nn::NormedSum> r = nn::fused_layer_norm(x, update, scale, weight, b, 1e-5);
        ASSERT_TRUE(r);
        const at::Tensor sum = x + scale * update;
        EXPECT_TRUE(at::equal(r->sum, sum));
        EXPECT_LE(relative_error(r->normed, at::layer_norm(sum, {dim}, weight, b, 1e-5)), tol);
      }
    }
  }
  const at::Tensor x = at::randn({2, 16}, at::TensorOptions(at::kCUDA));
  EXPECT_FALSE(nn::fused_layer_norm(x.t(), {}, {}, at::ones({2}, x.options()), {}, 1e-5));  // not contiguous
  EXPECT_FALSE(nn::fused_layer_norm(x, {}, {}, at::ones({16}, x.options().dtype(at::kBFloat16)), {}, 1e-5));
  const at::Tensor wide = at::randn({1, 4100}, x.options());
  EXPECT_FALSE(nn::fused_layer_norm(wide, {}, {}, at::ones({4100}, x.options()), {}, 1e-5));  // past 1024
}

// The ring attention kernel against the engine's libtorch step (nn/rope.h,
// nn/kv_cache.h, nn/attention.h) over many steps: the ring wraps, the
// oldest slot drops out as the reference's labelling says, rows may sit at
// different steps; Mimi's sizes included. Both kernels: the clustered one
// (the default), which splits few (row, head)s over a cluster's blocks on
// compute 9.0+, and the single-block one (PERSONAPLEX_RING_ATTENTION=single).
TEST(FusedOps, CudaRingAttentionIsTheLibtorchStep) {
  if (!have_kernels()) GTEST_SKIP() << "no CUDA device, or a build without the kernels";
  at::manual_seed(17);
  for (const char *kernel : {"", "single"}) {
    SCOPED_TRACE(kernel);
    const test::ScopedEnv chosen("PERSONAPLEX_RING_ATTENTION", kernel);
    for (const at::ScalarType dtype : {at::kBFloat16, at::kFloat}) {
      const at::TensorOptions cuda = at::TensorOptions(at::kCUDA).dtype(dtype);
      const auto longs = at::TensorOptions(at::kCUDA).dtype(at::kLong);
      for (const auto &[B, T, H, D, S, rows_mode] :
           std::vector<std::array<int64_t, 6>>{{1, 2, 8, 64, 10, 0},
                                               {3, 2, 2, 16, 7, 1},
                                               {2, 1, 4, 32, 5, 1},
                                               {1, 3, 2, 8, 6, 0},
                                               {1, 2, 8, 64, 250, 0},  // Mimi's
                                               {2, 3, 4, 32, 100, 1},
                                               {20, 2, 8, 64, 100, 1}}) {
        SCOPED_TRACE(std::string(at::toString(dtype)) + " B " + std::to_string(B) + " T " + std::to_string(T) + " D " +
                     std::to_string(D) + " slots " + std::to_string(S));
        const at::Tensor frequencies = nn::rope_frequencies(D, 10000.0, at::Device(at::kCUDA));
        nn::RingKVCache want(B, H, S, D, cuda);
        const at::Tensor keys = at::zeros({B, H, S, D}, cuda), values = at::zeros({B, H, S, D}, cuda);
        // Rows mode: row r starts r steps later (its step counts from there).
        at::Tensor steps = rows_mode ? at::arange(B, longs) * 3 : at::zeros({1}, longs);
        for (int64_t step = 0; step < 3 * S; ++step) {
          SCOPED_TRACE("step " + std::to_string(step));
          const at::Tensor qkv = at::randn({B, T, 3 * H * D}, cuda);
          const at::Tensor steps_before = steps.clone();
          const std::optional<at::Tensor> y = nn::fused_ring_attention(qkv, keys, values, steps, frequencies);
          ASSERT_TRUE(y);
          steps.add_(T);
          // The libtorch step, as nn/transformer.cpp runs it.
          const at::Tensor starts = rows_mode ? steps_before.view({B, 1}) : steps_before;
          const at::Tensor positions = starts + at::arange(T, longs);
          const at::Tensor parts = qkv.view({B, T, 3, H, D}).permute({2, 0, 3, 1, 4});
          const nn::RopeTables rope = nn::rope_tables(positions, frequencies);
          const at::Tensor qk = nn::rope_rotate(parts.narrow(0, 0, 2), rope);
          want.write(qk[1], parts[2], at::remainder(positions, S));
          const at::Tensor labels = nn::RingKVCache::labels(starts + T, at::arange(S, longs), S);
          const at::Tensor mask = nn::causal_window_mask(positions, labels, S);
          const at::Tensor q = qk[0].to(at::kFloat), k = want.keys().to(at::kFloat), v = want.values().to(at::kFloat);
          at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(D));
          scores = scores.masked_fill((rows_mode ? mask : mask.view({1, 1, T, S})).logical_not(), -INFINITY);
          const at::Tensor expected = at::matmul(at::softmax(scores, -1), v).transpose(1, 2).reshape({B, T, H * D});
          EXPECT_LE(ulps(keys, want.keys()), 1.0);  // rotated and rounded alike, at the same slots
          EXPECT_TRUE(at::equal(values, want.values()));
          const double err = ((y->to(at::kFloat) - expected).abs().max() / expected.abs().max()).item<double>();
          EXPECT_LT(err, dtype == at::kBFloat16 ? 1e-2 : 1e-5);
        }
      }
    }
  }
  const at::Tensor x = at::zeros({1, 2, 48}, at::TensorOptions(at::kCUDA));
  EXPECT_FALSE(nn::ring_attention_takes(x, 2, 2, 6, 2));   // as many queries as slots
  EXPECT_FALSE(nn::ring_attention_takes(x, 2, 2, 7, 16));  // an odd head size: no rotation pairs
}
