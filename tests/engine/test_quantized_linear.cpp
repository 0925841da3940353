// Linear weights in 8 bits: the round trip stays within half a step, the
// quantized linear is the dequantized weight's linear, format names.
#include <gtest/gtest.h>
#include <torch/version.h>

#include <string>

#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#endif

#include "core/cuda_kernels.h"
#include "core/error.h"
#include "core/graph_cache.h"
#include "core/thread_stream.h"
#include "nn/fused_ops.h"
#include "nn/quantized_linear.h"
#include "test_util.h"

using namespace personaplex;
using namespace personaplex::nn;

namespace {

// Odd sizes, rows of very different magnitudes and an all-zero row.
at::Tensor test_weight() {
  at::manual_seed(7);
  at::Tensor w = at::randn({37, 53}) * at::linspace(0.01, 3.0, 37).unsqueeze(1);
  w[5].zero_();
  return w;
}

std::string format_error(const std::string &name) {
  try {
    parse_weight_format(name);
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(QuantizedLinear, Int8RoundTripIsWithinHalfAStep) {
  at::Tensor w = test_weight();
  LinearWeight q = quantize(w, WeightFormat::kInt8);
  ASSERT_TRUE(q.quantized());
  EXPECT_EQ(q.weight.scalar_type(), at::kChar);
  EXPECT_EQ(q.weight.sizes(), w.sizes());
  EXPECT_EQ(q.scale.sizes(), (std::vector<int64_t>{37}));
  EXPECT_EQ(q.scale.scalar_type(), at::kFloat);
  EXPECT_EQ(q.nbytes(), 37 * 53 + 37 * 4);
  at::Tensor error = (dequantize(q, at::kFloat) - w).abs();
  at::Tensor half_step = q.scale.unsqueeze(1) / 2;
  EXPECT_TRUE(error.le(half_step * (1 + 1e-5)).all().item<bool>()) << (error / half_step).max();
  // Each row's largest value maps to +-127: the whole int8 range is used.
  at::Tensor row_max = q.weight.abs().to(at::kInt).amax(1);
  row_max[5] = 127;  // the zero row stays zero
  EXPECT_TRUE(row_max.eq(127).all().item<bool>());
  EXPECT_EQ(dequantize(q, at::kFloat)[5].abs().sum().item<float>(), 0.0f);
}

TEST(QuantizedLinear, LinearIsTheDequantizedWeightsLinear) {
  at::Tensor w = test_weight();
  at::Tensor x = at::randn({2, 3, 53});
  LinearWeight q = quantize(w, WeightFormat::kInt8);
  at::Tensor y = linear(x, q);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 3, 37}));
  EXPECT_TRUE(at::allclose(y, at::linear(x, dequantize(q, at::kFloat)), 1e-5, 1e-5));
  // Close to the float weight's, row by row (each row keeps its own scale).
  at::Tensor exact = at::linear(x, w);
  at::Tensor rel = (y - exact).abs().amax({0, 1}) / exact.abs().amax({0, 1}).clamp_min(1e-12);
  EXPECT_LT(rel.max().item<float>(), 0.03f);
}

TEST(QuantizedLinear, AsLoadedIsThePlainWeight) {
  at::Tensor w = test_weight();
  LinearWeight plain = quantize(w, WeightFormat::kAsLoaded);
  EXPECT_FALSE(plain.quantized());
  EXPECT_TRUE(plain.weight.is_same(w));
  at::Tensor x = at::randn({4, 53});
  EXPECT_TRUE(at::equal(linear(x, plain), at::linear(x, w)));
  EXPECT_EQ(plain.nbytes(), 37 * 53 * 4);
}

TEST(QuantizedLinear, FormatNames) {
  for (const char *name : {"bf16", "auto", "none"}) EXPECT_EQ(parse_weight_format(name), WeightFormat::kAsLoaded);
  EXPECT_EQ(parse_weight_format("int8"), WeightFormat::kInt8);
  EXPECT_EQ(parse_weight_format("fp8"), WeightFormat::kFp8);
  for (auto f : {WeightFormat::kAsLoaded, WeightFormat::kInt8, WeightFormat::kFp8})
    EXPECT_EQ(parse_weight_format(weight_format_name(f)), f);
  const std::string e = format_error("int4");
  EXPECT_NE(e.find("'int4'"), std::string::npos) << e;
  EXPECT_NE(e.find("bf16, int8 or fp8"), std::string::npos) << e;
}

TEST(QuantizedLinear, Fp8RoundTripKeepsThreeMantissaBits) {
  if (!float8_available()) {
    EXPECT_THROW(check_weight_format(WeightFormat::kFp8, at::Device(at::kCPU), at::kFloat), Error);
    EXPECT_THROW(quantize(test_weight(), WeightFormat::kFp8), Error);
    GTEST_SKIP() << "this libtorch has no float8";
  }
  EXPECT_NO_THROW(check_weight_format(WeightFormat::kFp8, at::Device(at::kCPU), at::kFloat));
  at::Tensor w = test_weight();
  LinearWeight q = quantize(w, WeightFormat::kFp8);
  EXPECT_EQ(q.nbytes(), 37 * 53 + 37 * 4);
  // e4m3: a relative step of 2^-3 (half of it when rounding), subnormals
  // below 2^-6 spaced 2^-9 apart, in units of the row's scale.
  at::Tensor error = (dequantize(q, at::kFloat) - w).abs();
  at::Tensor bound = w.abs() * 0.0625 + q.scale.unsqueeze(1) * (0.5 / 512);
  EXPECT_TRUE(error.le(bound * (1 + 1e-5)).all().item<bool>());
  at::Tensor x = at::randn({3, 53});
  EXPECT_TRUE(at::allclose(linear(x, q), at::linear(x, dequantize(q, at::kFloat)), 1e-5, 1e-5));
}

namespace {

// Rows of x around every kernel's limits against `f` weights on `device`,
// odd and aligned sizes, bf16 and fp32 activations, each against the
// dequantized weights' linear. The activations' 8-bit matmul is turned off,
// so 17-128 rows of bf16 x go to the tensor-core kernel, but fp8 past 64
// rows: the scaled matmul, which quantizes the activations too.
void expect_rows_are_the_dequantized_linear(WeightFormat f, const at::Device &device) {
  const test::ScopedEnv kernel("PERSONAPLEX_8BIT_GEMM", "weight-only");
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{48, 64}, {1040, 4096}, {32, 11264}, {2048, 1024}};
  for (const auto &[n, k] : sizes) {
    at::Tensor w = (at::randn({n, k}) * at::linspace(0.05, 2.0, n).unsqueeze(1)).to(device);
    const LinearWeight q = quantize(w, f);
    for (const at::ScalarType dtype : {at::kBFloat16, at::kFloat}) {
      // 17-128 rows of bf16: the tensor-core kernel (k split or not).
      for (const int64_t rows : {1, 2, 3, 5, 8, 12, 16, 17, 31, 64, 100, 128, 129}) {
        SCOPED_TRACE("n " + std::to_string(n) + " k " + std::to_string(k) + " " + std::string(at::toString(dtype)) +
                     " rows " + std::to_string(rows));
        at::Tensor x = at::randn({rows, 1, k}, at::TensorOptions(device).dtype(dtype));
        at::Tensor y = linear(x, q);
        ASSERT_EQ(y.sizes(), (std::vector<int64_t>{rows, 1, n}));
        ASSERT_EQ(y.scalar_type(), dtype);
        at::Tensor want = at::linear(x.to(at::kFloat), dequantize(q, at::kFloat));
        at::Tensor err = (y.to(at::kFloat) - want).abs().max() / want.abs().max();
        // bf16 output rounding (2^-8 relative), fp32 summation order.
        float tolerance = dtype == at::kBFloat16 ? 8e-3f : 1e-5f;
        const bool on_kernel = dtype == at::kBFloat16 && rows <= 64;
        if (f == WeightFormat::kFp8 && rows > 16 && !on_kernel) tolerance = 5e-2f;
        EXPECT_LT(err.item<float>(), tolerance);
      }
    }
  }
}

// int8, and fp8 where this libtorch has it.
std::vector<WeightFormat> eight_bit_formats() {
  std::vector<WeightFormat> formats = {WeightFormat::kInt8};
  if (float8_available()) formats.push_back(WeightFormat::kFp8);
  return formats;
}

}  // namespace

// On a GPU: a few rows against 8-bit weights (the weight-only kernel where
// the build has it) are the dequantized weights' linear, for every row count
// around the kernel's limit, odd and aligned sizes, bf16 and fp32
// activations; more rows take the matrix-product path and agree too.
TEST(QuantizedLinear, CudaRowsAreTheDequantizedWeightsLinear) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const at::Device cuda(at::kCUDA);
  at::manual_seed(11);
  for (const WeightFormat f : eight_bit_formats()) {
    SCOPED_TRACE(weight_format_name(f));
    expect_rows_are_the_dequantized_linear(f, cuda);
  }
}

// On a GPU: the tensor-core kernel's choices kept for measuring (weights
// two tiles ahead, more blocks an SM, k's parts summed within a cluster,
// one or two column groups a warp at every row count)
// give the dequantized weights' linear too.
TEST(QuantizedLinear, CudaGemmChoicesAreTheDequantizedWeightsLinear) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const at::Device cuda(at::kCUDA);
  at::manual_seed(12);
  for (const auto &[name, value] : {std::pair{"PERSONAPLEX_GEMM_PREFETCH", "2"},
                                    std::pair{"PERSONAPLEX_GEMM_BLOCKS_PER_SM", "3"},
                                    std::pair{"PERSONAPLEX_GEMM_SPLITS", "cluster"},
                                    std::pair{"PERSONAPLEX_GEMM_GROUPS", "1"},
                                    std::pair{"PERSONAPLEX_GEMM_GROUPS", "2"}}) {
    const test::ScopedEnv chosen(name, value);
    for (const WeightFormat f : eight_bit_formats()) {
      SCOPED_TRACE(std::string(name) + "=" + value + " " + weight_format_name(f));
      expect_rows_are_the_dequantized_linear(f, cuda);
    }
  }
}

namespace {

// x rounded per row as the activation-quantized product rounds it: each
// row over its largest magnitude / `largest`, to int8 steps or fp8 e4m3.
at::Tensor rows_rounded(const at::Tensor &x, WeightFormat f) {
  const double largest = f == WeightFormat::kInt8 ? 127.0 : 448.0;
  at::Tensor scale = x.abs().amax(-1, true).clamp_min(1e-12) / largest;
  at::Tensor q = x / scale;
  if (f == WeightFormat::kInt8) return q.round().clamp(-127, 127) * scale;
  // fp8 rounding on the host, which takes any size.
  const at::Tensor rounded = dequantize(quantize(q.reshape({-1, x.size(-1)}).cpu(), WeightFormat::kFp8), at::kFloat);
  return rounded.to(x.device()).view_as(x) * scale;
}

// Why the activations' 8-bit matmuls can't run here; empty where they can.
std::string no_8bit_matmuls() {
  if (!at::hasCUDA()) return "no CUDA device";
  if (!cuda_kernels_enabled()) return "the engine's CUDA kernels are not built in or turned off";
  if (TORCH_VERSION_MAJOR < 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR < 5))
    return "the 8-bit matmuls need libtorch 2.5 or newer";
  return "";
}

// Weights (n * k) from which the activations' 8-bit matmul takes a product
// whatever its shape: the engine's threshold, the temporal transformer's
// sizes.
constexpr int64_t kLargeWeights = int64_t(1) << 23;

}  // namespace

// On a GPU, with PERSONAPLEX_8BIT_GEMM=activations: 17 or more rows of bf16
// x against 8-bit weights are x rounded per row to the weights' format
// times the dequantized weights (the 8-bit matmul's product, scaled back),
// and stay near the weight-only product; 16 rows keep the weight-only
// kernel.
TEST(QuantizedLinear, CudaActivationQuantizedRowsAreTheRoundedProduct) {
  if (const std::string why = no_8bit_matmuls(); !why.empty()) GTEST_SKIP() << why;
  const at::Device cuda(at::kCUDA);
  at::manual_seed(14);
  const test::ScopedEnv chosen("PERSONAPLEX_8BIT_GEMM", "activations");
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{2048, 4096}, {768, 11264}, {8192, 1024}, {1040, 4096}};
  for (const WeightFormat f : eight_bit_formats()) {
    for (const auto &[n, k] : sizes) {
      const at::Tensor w = (at::randn({n, k}) * at::linspace(0.05, 2.0, n).unsqueeze(1)).to(cuda);
      const LinearWeight q = quantize(w, f);
      const at::Tensor wd = dequantize(q, at::kFloat);
      for (const int64_t rows : {16, 17, 64, 128, 200}) {
        SCOPED_TRACE(std::string(weight_format_name(f)) + " n " + std::to_string(n) + " k " +
                     std::to_string(k) + " rows " + std::to_string(rows));
        // Rows of different magnitudes, one all zero.
        at::Tensor x = at::randn({rows, 1, k}, cuda) * at::linspace(0.1, 4.0, rows, cuda).view({rows, 1, 1});
        x[rows / 2].zero_();
        x = x.to(at::kBFloat16);
        const at::Tensor y = linear(x, q).to(at::kFloat);
        ASSERT_EQ(y.sizes(), (std::vector<int64_t>{rows, 1, n}));
        const bool rounds = rows > 16;
        const at::Tensor exact = at::linear(x.to(at::kFloat), wd);
        const at::Tensor rounded = rounds ? at::linear(rows_rounded(x.to(at::kFloat), f), wd) : exact;
        // Per row: int8, bf16 output rounding against the row's largest
        // output. fp8's scaled matmul (H100, H200) lands up to 4.4 % of it
        // off the rounded product: bounded here.
        const at::Tensor row_max = rounded.abs().amax(-1, true).clamp_min(1e-20);
        const bool fp8_rounds = rounds && f == WeightFormat::kFp8;
        EXPECT_LT(((y - rounded).abs() / row_max).max().item<float>(), fp8_rounds ? 6e-2f : 8e-3f);
        EXPECT_LT(((y - exact).abs() / row_max).max().item<float>(),
                  fp8_rounds ? 1.2e-1f : (rounds ? 3e-2f : 8e-3f));
        EXPECT_EQ(y[rows / 2].abs().max().item<float>(), 0.0f);
      }
    }
  }
}

// On a GPU, by default: 17 or more rows of bf16 x against large (8 Mi values
// or more) or wide (n >= 2k) 8-bit weights take the activations' 8-bit
// matmul, int8 and fp8 alike (the same bits as with that choice named);
// others the weight-only kernel up to its rows (fp8 64, int8 128); 16 rows
// the weight-only kernel always.
TEST(QuantizedLinear, CudaDefaultIsActivationsForLargeOrWideProducts) {
  if (const std::string why = no_8bit_matmuls(); !why.empty()) GTEST_SKIP() << why;
  const at::Device cuda(at::kCUDA);
  at::manual_seed(15);
  const auto with = [](const char *choice, const at::Tensor &x, const LinearWeight &q) {
    const test::ScopedEnv chosen("PERSONAPLEX_8BIT_GEMM", choice);
    return linear(x, q);
  };
  for (const WeightFormat f : eight_bit_formats()) {
    for (const auto &[n, k] : std::vector<std::pair<int64_t, int64_t>>{{2048, 4096}, {3072, 1024}, {1024, 1024}}) {
      const LinearWeight q = quantize(at::randn({n, k}, cuda), f);
      const bool large_or_wide = n * k >= kLargeWeights || n >= 2 * k;
      for (const int64_t rows : {16, 17, 64, 100}) {
        SCOPED_TRACE(weight_format_name(f) + " n " + std::to_string(n) + " rows " + std::to_string(rows));
        const at::Tensor x = at::randn({rows, k}, cuda).to(at::kBFloat16);
        const at::Tensor y = with("", x, q);
        const at::Tensor weight_only = with("weight-only", x, q), activations = with("activations", x, q);
        const bool fp8_past_kernel = f == WeightFormat::kFp8 && rows > 64;
        const bool on_activations = rows > 16 && (large_or_wide || fp8_past_kernel);
        EXPECT_TRUE(at::equal(y, on_activations ? activations : weight_only));
        // Where the choice applies (17-64 rows; int8 to 128), the two paths
        // round differently.
        if (rows > 16 && !fp8_past_kernel) {
          EXPECT_FALSE(at::equal(weight_only, activations));
        }
      }
    }
  }
}

// On a GPU: bf16 weights as loaded. One or two rows of bf16 x take the
// matrix-vector kernel where the build has it, more go to cuBLAS; all are
// the fp32 product within bf16 rounding, and a row's result does not
// depend on the row beside it (a step alone is the same step batched by 2).
TEST(QuantizedLinear, CudaBf16WeightsAsLoaded) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const auto bf16 = at::TensorOptions(at::kCUDA).dtype(at::kBFloat16);
  at::manual_seed(13);
  const std::vector<std::pair<int64_t, int64_t>> sizes = {
      {48, 64}, {1040, 4096}, {33, 11264}, {3072, 1024}, {16, 16384}};
  for (const auto &[n, k] : sizes) {
    const LinearWeight w(at::randn({n, k}, bf16) * 0.05);
    for (const int64_t rows : {1, 2, 3, 9}) {
      SCOPED_TRACE("n " + std::to_string(n) + " k " + std::to_string(k) + " rows " + std::to_string(rows));
      at::Tensor x = at::randn({1, rows, k}, bf16);
      at::Tensor y = linear(x, w);
      ASSERT_EQ(y.sizes(), (std::vector<int64_t>{1, rows, n}));
      ASSERT_EQ(y.scalar_type(), at::kBFloat16);
      at::Tensor want = at::linear(x.to(at::kFloat), w.weight.to(at::kFloat));
      EXPECT_LT(((y.to(at::kFloat) - want).abs().max() / want.abs().max()).item<float>(), 8e-3f);
      if (rows == 2) {
        EXPECT_TRUE(at::equal(y.select(1, 0), linear(x.narrow(1, 0, 1), w).select(1, 0)));
      }
    }
  }
}

// A gated MLP's input product and its SiLU gate in one launch give the same
// bits as the two (the product, then the fused gate), for bf16, int8 and
// fp8 weights, bf16 and fp32 activations, one and two rows, the model's MLP
// shapes; it declines what the matrix-vector kernel does not take (three
// rows, bf16 weights wider than its limit), anything off CUDA, and
// everything with PERSONAPLEX_SILU_GATE=separate.
TEST(QuantizedLinear, SiluGateEpilogueIsTheProductThenTheGate) {
  const at::Tensor x_cpu = at::randn({1, 64});
  const LinearWeight w_cpu = quantize(at::randn({48, 64}), WeightFormat::kInt8);
  EXPECT_FALSE(linear_silu_gate(x_cpu, w_cpu).has_value());  // a CPU tensor
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  if (!cuda_kernels_enabled()) GTEST_SKIP() << "the engine's CUDA kernels are not built in or turned off";
  const at::Device cuda(at::kCUDA);
  at::manual_seed(17);
  std::vector<WeightFormat> formats = {WeightFormat::kAsLoaded, WeightFormat::kInt8};
  if (float8_available()) formats.push_back(WeightFormat::kFp8);
  // (hidden, k): tiny, the depth transformer's, the temporal transformer's.
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{24, 64}, {2816, 1024}, {11264, 4096}};
  for (const WeightFormat f : formats) {
    for (const auto &[hidden, k] : sizes) {
      const at::Tensor w = at::randn({2 * hidden, k}, at::TensorOptions(cuda).dtype(at::kBFloat16)) * 0.05;
      const LinearWeight q = quantize(w, f);
      for (const at::ScalarType dtype : {at::kBFloat16, at::kFloat}) {
        if (f == WeightFormat::kAsLoaded && dtype != at::kBFloat16) continue;  // bf16 weights take bf16 x
        for (const int64_t rows : {1, 2, 3}) {
          SCOPED_TRACE(weight_format_name(f) + " hidden " + std::to_string(hidden) + " k " + std::to_string(k) +
                       " " + std::string(at::toString(dtype)) + " rows " + std::to_string(rows));
          const at::Tensor x = at::randn({rows, 1, k}, at::TensorOptions(cuda).dtype(dtype));
          {
            const test::ScopedEnv separate("PERSONAPLEX_SILU_GATE", "separate");
            EXPECT_FALSE(linear_silu_gate(x, q).has_value());
          }
          const std::optional<at::Tensor> gate = linear_silu_gate(x, q);
          const bool taken = rows <= 2 && !(f == WeightFormat::kAsLoaded && 2 * hidden > 8192);
          ASSERT_EQ(gate.has_value(), taken);
          if (!taken) continue;
          const std::optional<at::Tensor> want = fused_silu_gate(linear(x, q));
          ASSERT_TRUE(want.has_value());
          ASSERT_EQ(gate->sizes(), (std::vector<int64_t>{rows, 1, hidden}));
          EXPECT_TRUE(at::equal(*gate, *want));
        }
      }
    }
  }
}

// Off the GPU no product takes the activations' 8-bit path: nothing asks a
// launch to round rows for it, and rows handed to linear anyway change
// nothing.
TEST(QuantizedLinear, RowsForTheProductAreUnusedOffCuda) {
  const LinearWeight q = quantize(test_weight(), WeightFormat::kInt8);
  const at::Tensor x = at::randn({64, 1, 53}).to(at::kBFloat16);
  EXPECT_FALSE(quantized_rows_type(q, 64, at::kBFloat16).has_value());
  const QuantizedRows junk{at::ones({64, 53}, at::kChar), at::ones({64, 1})};
  EXPECT_TRUE(at::equal(linear(x, q, junk), linear(x, q)));
}

// On a GPU, 64 rows (a batch): where the next product takes the 8-bit
// matmul, the RMSNorm before it (with the residual addition) and the SiLU
// gate round their output's rows in the same launch; the product reading
// those rows is bit for bit the product that rounds them itself, and the
// outputs are those of the launches without rounding. Rows of another type
// or size are not used.
TEST(QuantizedLinear, CudaRowsRoundedByTheNormAndGateAreTheProductsOwn) {
  if (const std::string why = no_8bit_matmuls(); !why.empty()) GTEST_SKIP() << why;
  const at::Device cuda(at::kCUDA);
  const auto bf16 = at::TensorOptions(cuda).dtype(at::kBFloat16);
  at::manual_seed(15);
  // (n, k) of products the activations' path takes: the temporal q/k/v and
  // MLP output, the depth transformer's q/k/v.
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{12288, 4096}, {4096, 11264}, {3072, 1024}};
  for (const WeightFormat f : eight_bit_formats()) {
    for (const auto &[n, k] : sizes) {
      SCOPED_TRACE(weight_format_name(f) + " n " + std::to_string(n) + " k " + std::to_string(k));
      const LinearWeight q = quantize(at::randn({n, k}, cuda) * 0.02, f);
      const std::optional<at::ScalarType> type = quantized_rows_type(q, 64, at::kBFloat16);
      ASSERT_TRUE(type.has_value());
      EXPECT_EQ(*type, q.weight.scalar_type());
      EXPECT_FALSE(quantized_rows_type(q, 16, at::kBFloat16).has_value());  // the weight-only kernel's
      EXPECT_FALSE(quantized_rows_type(q, 64, at::kFloat).has_value());
      // The norm: rows of different magnitudes, one all zero after the sum.
      const at::Tensor x =
          (at::randn({64, 1, k}, cuda) * at::linspace(0.1, 4.0, 64, cuda).view({64, 1, 1})).to(at::kBFloat16);
      at::Tensor update = at::randn({64, 1, k}, bf16);
      update[9] = -x[9];
      const at::Tensor alpha = at::rand({k}, cuda) + 0.5;
      const std::optional<AddNormed> plain = fused_add_rms_norm(x, update, alpha, 1e-8);
      const std::optional<AddNormed> rounded = fused_add_rms_norm(x, update, alpha, 1e-8, *type);
      ASSERT_TRUE(plain && rounded);
      EXPECT_FALSE(plain->rows.q.defined());
      EXPECT_TRUE(at::equal(rounded->normed, plain->normed));
      EXPECT_TRUE(at::equal(rounded->sum, plain->sum));
      const at::Tensor y = linear(plain->normed, q);
      // The norm's one-pass layout (rows of at most 8192) rounds them; a
      // wider row is normed alone, the product rounding it.
      ASSERT_EQ(rounded->rows.q.defined(), k <= 8192);
      EXPECT_TRUE(at::equal(linear(rounded->normed, q, rounded->rows), y));
      if (k <= 8192) {
        EXPECT_EQ(y[9].abs().max().item<float>(), 0.0f);
        // Rows of the other 8-bit type, or of fewer rows, are left alone.
        const QuantizedRows other{rounded->rows.q.view(at::kByte), rounded->rows.scale};
        EXPECT_TRUE(at::equal(linear(plain->normed, q, other), y));
        const QuantizedRows fewer{rounded->rows.q.narrow(0, 0, 32), rounded->rows.scale.narrow(0, 0, 32)};
        EXPECT_TRUE(at::equal(linear(plain->normed, q, fewer), y));
      }
      // The gate, whose output is the product's input.
      const at::Tensor h = at::randn({64, 1, 2 * k}, bf16) * 2.0;
      const std::optional<Gated> gated = fused_silu_gate_rows(h, *type);
      const std::optional<at::Tensor> gate = fused_silu_gate(h);
      ASSERT_TRUE(gated && gate);
      ASSERT_TRUE(gated->rows.q.defined());
      EXPECT_TRUE(at::equal(gated->out, *gate));
      EXPECT_TRUE(at::equal(linear(gated->out, q, gated->rows), linear(*gate, q)));
    }
  }
}

// On a GPU: 8-bit products on the activations' path whose output tiles
// would leave most SMs idle (n = 4096 at 64 rows: 32 tiles) run as parts
// over slices of k side by side. int8's int32 parts sum exactly: the
// output is the whole product's bit for bit; fp8's sum in fp32, within the
// whole product's bf16 rounding. The same bits eagerly and replayed from a
// CUDA graph (the branches captured as such). Wide products stay whole.
TEST(QuantizedLinear, CudaPartsOverKAreTheWholeProduct) {
  if (const std::string why = no_8bit_matmuls(); !why.empty()) GTEST_SKIP() << why;
  const at::Device cuda(at::kCUDA);
  at::manual_seed(19);
#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
  const int64_t sms = at::cuda::getDeviceProperties(0)->multiProcessorCount;
#else
  const int64_t sms = 0;  // skipped above: no_8bit_matmuls
#endif
  int64_t split_seen = 0;
  const test::ScopedEnv four("PERSONAPLEX_8BIT_SPLIT_K", "4");
  for (const WeightFormat f : eight_bit_formats()) {
    // (n, k): the temporal attention output and MLP output, its MLP input.
    for (const auto &[n, k] : std::vector<std::pair<int64_t, int64_t>>{{4096, 4096}, {4096, 11264}, {22528, 4096}}) {
      const LinearWeight q = quantize(at::randn({n, k}, cuda), f);
      for (const int64_t rows : {17, 64, 128}) {
        SCOPED_TRACE(weight_format_name(f) + " n " + std::to_string(n) + " k " + std::to_string(k) + " rows " +
                     std::to_string(rows));
        const at::Tensor x = at::randn({rows, k}, cuda).to(at::kBFloat16);
        const int64_t parts = product_parts(q, rows, at::kBFloat16);
        const int64_t tiles = (n / 128) * ((rows + 127) / 128);
        EXPECT_EQ(parts > 1, 4 * tiles <= sms);
        if (parts > 1) ++split_seen;
        at::Tensor whole;
        {
          const test::ScopedEnv one("PERSONAPLEX_8BIT_SPLIT_K", "1");
          EXPECT_EQ(product_parts(q, rows, at::kBFloat16), 1);
          whole = linear(x, q);
        }
        const at::Tensor y = linear(x, q);
        if (f == WeightFormat::kInt8) {
          EXPECT_TRUE(at::equal(y, whole));
        } else {
          const at::Tensor row_max = whole.to(at::kFloat).abs().amax(-1, true).clamp_min(1e-20);
          EXPECT_LT(((y.to(at::kFloat) - whole.to(at::kFloat)).abs() / row_max).max().item<float>(), 1e-2f);
        }
        at::Tensor replayed = at::zeros_like(y);
        GraphCache graphs(cuda, GraphCache::available(cuda));
        for (int i = 0; i < 3; ++i) graphs.run({rows}, [&] { replayed.copy_(linear(x, q)); });
        synchronize_current_stream(cuda);
        EXPECT_EQ(graphs.failed_captures(), 0);
        EXPECT_TRUE(at::equal(replayed, y));
      }
    }
  }
  if (sms >= 128) {
    EXPECT_GT(split_seen, 0);  // H100, H200: n = 4096 splits to 128 rows
  }
}
