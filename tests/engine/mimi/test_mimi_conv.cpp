// Streaming convs must give, for any chunking, what one call on the whole
// signal gives.
#include <gtest/gtest.h>

#include <ATen/Context.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <utility>

#include "mimi/conv.h"
#include "mimi/conv_filters.h"
#include "mimi/conv_product.h"
#include "test_util.h"

using namespace personaplex::mimi;

namespace {

struct Case {
  int64_t kernel, stride, dilation, groups;
  PadMode pad;
};

std::vector<int64_t> random_chunks(int64_t total, std::mt19937 &rng) {
  std::uniform_int_distribution<int64_t> size(0, 9);
  std::vector<int64_t> out;
  for (int64_t done = 0; done < total;) {
    int64_t n = std::min(size(rng), total - done);
    out.push_back(n);
    done += n;
  }
  return out;
}

ConvSpec spec_of(const Case &c, int64_t cin, int64_t cout, bool bias) {
  ConvSpec s;
  s.name = "test.conv";
  s.in_channels = cin;
  s.out_channels = cout;
  s.kernel_size = c.kernel;
  s.stride = c.stride;
  s.dilation = c.dilation;
  s.groups = c.groups;
  s.bias = bias;
  s.pad_mode = c.pad;
  return s;
}

const std::vector<Case> kCases = {
    {7, 1, 1, 1, PadMode::Constant}, {3, 1, 2, 1, PadMode::Constant}, {8, 4, 1, 1, PadMode::Constant},
    {4, 2, 1, 1, PadMode::Replicate}, {10, 5, 1, 2, PadMode::Constant}, {1, 1, 1, 1, PadMode::Constant},
    {6, 3, 1, 1, PadMode::Replicate},
};

}  // namespace

TEST(MimiConv, StreamingMatchesWholeSignal) {
  std::mt19937 rng(7);
  for (const Case &c : kCases) {
    for (int trial = 0; trial < 4; ++trial) {
      const int64_t cin = 4, cout = 6, B = 2;
      ConvSpec s = spec_of(c, cin, cout, trial % 2 == 0);
      Conv1d conv(s, at::randn({cout, cin / c.groups, c.kernel}),
                  s.bias ? at::randn({cout}) : at::Tensor());
      const int64_t T = c.stride * (3 + trial * 5);
      // A constant start makes a replicate-vs-zero padding mistake visible.
      at::Tensor x = at::randn({B, cin, T}) + 2.0;
      at::Tensor whole = conv.forward(x);
      ASSERT_EQ(whole.size(2), T / c.stride);
      ConvState state;
      std::vector<at::Tensor> parts;
      int64_t t = 0;
      for (int64_t n : random_chunks(T, rng)) {
        parts.push_back(conv.step(x.narrow(2, t, n), state));
        t += n;
      }
      at::Tensor streamed = at::cat(parts, 2);
      ASSERT_EQ(streamed.sizes(), whole.sizes()) << "kernel " << c.kernel << " stride " << c.stride;
      EXPECT_TRUE(at::allclose(streamed, whole, 1e-5, 1e-5)) << "kernel " << c.kernel << " stride " << c.stride;
    }
  }
}

TEST(MimiConv, ReplicatePaddingCopiesTheFirstSample) {
  ConvSpec s = spec_of({4, 2, 1, 1, PadMode::Replicate}, 1, 1, false);
  Conv1d conv(s, at::ones({1, 1, 4}), at::Tensor());
  at::Tensor x = at::full({1, 1, 2}, 3.0);
  // Window = [3, 3 | 3, 3] with replicate padding: 12 (zeros would give 6).
  EXPECT_FLOAT_EQ(conv.forward(x).item<float>(), 12.f);
  ConvState state;
  EXPECT_FLOAT_EQ(conv.step(x, state).item<float>(), 12.f);
}

TEST(MimiConv, StepReturnsOnlyCompleteWindows) {
  ConvSpec s = spec_of({8, 4, 1, 1, PadMode::Constant}, 1, 1, false);
  Conv1d conv(s, at::randn({1, 1, 8}), at::Tensor());
  ConvState state;
  EXPECT_EQ(conv.step(at::randn({1, 1, 3}), state).size(2), 0);
  EXPECT_EQ(conv.step(at::randn({1, 1, 1}), state).size(2), 1);
  EXPECT_EQ(conv.step(at::randn({1, 1, 0}), state).size(2), 0);
  EXPECT_EQ(conv.step(at::randn({1, 1, 8}), state).size(2), 2);
}

TEST(MimiConvTranspose, StreamingCarriesTheOverlap) {
  std::mt19937 rng(11);
  for (auto [kernel, stride, groups] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {8, 4, 1}, {4, 2, 6}, {3, 1, 1}, {10, 5, 2}, {4, 4, 1}}) {
    for (bool bias : {true, false}) {
      const int64_t cin = 6, cout = 6, B = 2, T = 13;
      ConvSpec s = spec_of({kernel, stride, 1, groups, PadMode::Constant}, cin, cout, bias);
      ConvTranspose1d convtr(s, at::randn({cin, cout / groups, kernel}), bias ? at::randn({cout}) : at::Tensor());
      at::Tensor x = at::randn({B, cin, T});
      at::Tensor whole = convtr.forward(x);
      ASSERT_EQ(whole.size(2), stride * T);
      ConvTrState state;
      std::vector<at::Tensor> parts;
      int64_t t = 0;
      for (int64_t n : random_chunks(T, rng)) {
        at::Tensor y = convtr.step(x.narrow(2, t, n), state);
        EXPECT_EQ(y.size(2), stride * n);
        parts.push_back(y);
        t += n;
      }
      at::Tensor streamed = at::cat(parts, 2);
      EXPECT_TRUE(at::allclose(streamed, whole, 1e-5, 1e-5)) << "kernel " << kernel << " stride " << stride;
    }
  }
}

TEST(MimiConvTranspose, ResetForgetsTheOverlap) {
  ConvSpec s = spec_of({4, 2, 1, 1, PadMode::Constant}, 2, 2, true);
  ConvTranspose1d convtr(s, at::randn({2, 2, 4}), at::randn({2}));
  at::Tensor x = at::randn({1, 2, 3});
  ConvTrState state;
  at::Tensor first = convtr.step(x, state);
  at::Tensor carried = convtr.step(x, state);
  EXPECT_FALSE(at::allclose(first, carried));
  state.reset();
  EXPECT_TRUE(at::equal(convtr.step(x, state), first));
}

// A channels-last filter holds the same values, is what libtorch takes for
// a channels-last (NHWC) 4-d filter once unsqueezed as a 1-d convolution
// runs, and gives the same convolutions.
TEST(MimiConv, ChannelsLastFiltersGiveTheSameConvolutions) {
  at::manual_seed(5);
  const at::Tensor x = at::randn({2, 12, 40});
  const at::Tensor w = at::randn({20, 12, 5}), wt = at::randn({12, 20, 4});
  const at::Tensor cl = channels_last_filter(w), clt = channels_last_filter(wt);
  EXPECT_TRUE(at::equal(cl, w));
  EXPECT_FALSE(cl.is_contiguous());
  EXPECT_TRUE(cl.unsqueeze(2).is_contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(clt.unsqueeze(2).is_contiguous(at::MemoryFormat::ChannelsLast));
  const int64_t one = 1, two = 2, zero = 0;
  EXPECT_TRUE(at::allclose(at::conv1d(x, cl, {}, at::IntArrayRef(two)), at::conv1d(x, w, {}, at::IntArrayRef(two)),
                           1e-5, 1e-5));
  const auto transposed = [&](const at::Tensor &f) {
    return at::conv_transpose1d(x, f, {}, at::IntArrayRef(two), at::IntArrayRef(zero), at::IntArrayRef(zero), 1,
                                at::IntArrayRef(one));
  };
  EXPECT_TRUE(at::allclose(transposed(clt), transposed(wt), 1e-5, 1e-5));
  {
    const personaplex::test::ScopedEnv plain("PERSONAPLEX_CONV_FILTERS", "");
    EXPECT_TRUE(libtorch_filter(w).is_contiguous());
  }
  const personaplex::test::ScopedEnv nhwc("PERSONAPLEX_CONV_FILTERS", "nhwc");
  EXPECT_TRUE(libtorch_filter(w).unsqueeze(2).is_contiguous(at::MemoryFormat::ChannelsLast));
}

// A convolution as a product of the window's columns and the filter
// (mimi/conv_product.h) is libtorch's convolution, and a transposed one as
// a product and its overlaps added libtorch's transposed convolution:
// strides, dilations, batches, one output or several, with a bias and
// without.
TEST(MimiConv, ProductIsTheConvolution) {
  at::manual_seed(9);
  struct Shape {
    int64_t batch, cin, cout, kernel, stride, dilation, length;
  };
  for (const Shape &sh : std::vector<Shape>{{1, 16, 32, 16, 8, 1, 16},
                                            {1, 32, 16, 3, 1, 1, 4},
                                            {2, 8, 12, 3, 1, 2, 9},
                                            {1, 12, 8, 4, 2, 1, 4},
                                            {3, 5, 7, 1, 1, 1, 2}}) {
    SCOPED_TRACE(std::to_string(sh.cin) + "->" + std::to_string(sh.cout) + " kernel " + std::to_string(sh.kernel) +
                 " stride " + std::to_string(sh.stride) + " dilation " + std::to_string(sh.dilation));
    const at::Tensor x = at::randn({sh.batch, sh.cin, sh.length});
    const at::Tensor w = at::randn({sh.cout, sh.cin, sh.kernel}), b = at::randn({sh.cout});
    for (const at::Tensor &bias : {b, at::Tensor()}) {
      const at::Tensor want = at::conv1d(x, w, bias, at::IntArrayRef(sh.stride), at::IntArrayRef(int64_t(0)),
                                         at::IntArrayRef(sh.dilation));
      const at::Tensor got = conv_as_product(x, w, bias, sh.stride, sh.dilation);
      EXPECT_EQ(got.sizes(), want.sizes());
      EXPECT_TRUE(got.is_contiguous());
      EXPECT_TRUE(at::allclose(got, want, 1e-4, 1e-5));
    }
  }
  struct TransposedShape {
    int64_t batch, cin, cout, kernel, stride, length;
  };
  for (const TransposedShape &sh : std::vector<TransposedShape>{
           {1, 32, 16, 16, 8, 2}, {2, 16, 8, 12, 6, 3}, {1, 8, 4, 3, 2, 5}, {3, 4, 6, 2, 2, 1}}) {
    SCOPED_TRACE("transposed " + std::to_string(sh.cin) + "->" + std::to_string(sh.cout) + " kernel " +
                 std::to_string(sh.kernel) + " stride " + std::to_string(sh.stride));
    const at::Tensor x = at::randn({sh.batch, sh.cin, sh.length});
    const at::Tensor w = at::randn({sh.cin, sh.cout, sh.kernel}), b = at::randn({sh.cout});
    for (const at::Tensor &bias : {b, at::Tensor()}) {
      const at::Tensor want = at::conv_transpose1d(x, w, bias, at::IntArrayRef(sh.stride));
      const at::Tensor got = conv_transpose_as_product(x, w, bias, sh.stride);
      EXPECT_EQ(got.sizes(), want.sizes());
      EXPECT_TRUE(got.is_contiguous());
      EXPECT_TRUE(at::allclose(got, want, 1e-4, 1e-5));
    }
  }
}

// Which layers take the product: by default on CUDA the short ones, and of
// the transposed ones only those short over the whole batch; never past the
// length or with groups; the environment forces either way.
TEST(MimiConv, ProductChosen) {
  {
    const personaplex::test::ScopedEnv shipped("PERSONAPLEX_DEEP_CONV", "");
    EXPECT_TRUE(conv_as_product_chosen(16, 1, true));
    EXPECT_TRUE(conv_transpose_as_product_chosen(1, 16, 1, true));
    EXPECT_FALSE(conv_transpose_as_product_chosen(2, 16, 1, true));  // 32 inputs: libtorch's
    EXPECT_TRUE(conv_transpose_as_product_chosen(16, 1, 1, true));
    EXPECT_FALSE(conv_as_product_chosen(16, 1, false));  // the CPU: libtorch's
    EXPECT_FALSE(conv_transpose_as_product_chosen(1, 1, 1, false));
  }
  {
    const personaplex::test::ScopedEnv chosen("PERSONAPLEX_DEEP_CONV", "product");
    for (const bool cuda : {false, true}) {
      EXPECT_TRUE(conv_as_product_chosen(16, 1, cuda));
      EXPECT_TRUE(conv_transpose_as_product_chosen(64, 1, 1, cuda));
      EXPECT_FALSE(conv_as_product_chosen(17, 1, cuda));
      EXPECT_FALSE(conv_as_product_chosen(0, 1, cuda));
      EXPECT_FALSE(conv_as_product_chosen(2, 2, cuda));  // groups: not a single product
    }
  }
  const personaplex::test::ScopedEnv never("PERSONAPLEX_DEEP_CONV", "libtorch");
  EXPECT_FALSE(conv_as_product_chosen(1, 1, true));
  EXPECT_FALSE(conv_transpose_as_product_chosen(1, 1, 1, true));
}

// The convolution kernels (mimi/fused_conv.h) chosen for a part of a test
// alone, however it ends: for the layers measured faster ("1"), or for every
// layer they take ("all"); and the filters libtorch reads
// (mimi/conv_filters.h): as loaded ("") or channels-last ("nhwc"), for the
// layers made after.
struct ConvKernelsChosen {
  ConvKernelsChosen(const char *mode, const char *filters)
      : kernels("PERSONAPLEX_CONV_KERNEL", mode), filters("PERSONAPLEX_CONV_FILTERS", filters) {}
  personaplex::test::ScopedEnv kernels, filters;
};
struct ConvMode {
  const char *kernels, *filters;
  at::ScalarType dtype;
};
std::vector<ConvMode> conv_modes() {
  return {{"1", "", at::kFloat},      {"1", "", at::kBFloat16},      {"all", "", at::kFloat},
          {"all", "", at::kBFloat16}, {"0", "nhwc", at::kBFloat16}, {"1", "nhwc", at::kFloat}};
}

// Largest difference relative to the largest magnitude of `want`.
double relative_error(const at::Tensor &got, const at::Tensor &want) {
  return ((got.cpu().to(at::kFloat) - want).abs().max() / want.abs().max().clamp_min(1e-6)).item<double>();
}

// How close a CUDA step must come to libtorch's CPU one, relative to the
// largest magnitude: fp32 layers the kernels leave to libtorch run through
// cuDNN, in TF32 where it picks it.
double step_tolerance(at::ScalarType dtype) { return dtype == at::kFloat ? 1e-3 : 2e-2; }

// A step's outputs on CUDA against libtorch's CPU ones: the same forms
// given, of the same shapes, within step_tolerance.
void expect_outputs_match(const ConvOutput &got, const ConvOutput &want, at::ScalarType dtype) {
  for (const auto &[g, c] : {std::pair{got.raw, want.raw}, std::pair{got.elu, want.elu}}) {
    EXPECT_EQ(g.defined(), c.defined());
    if (!c.defined() || !g.defined()) continue;
    EXPECT_EQ(g.sizes(), c.sizes());
    if (c.numel() == 0 || g.sizes() != c.sizes()) continue;
    EXPECT_LT(relative_error(g, c), step_tolerance(dtype));
  }
}

// The CUDA step kernel (cuda/conv1d_step.h) against libtorch's CPU step at
// the released model's sizes: context read in place across chunks (also
// chunks shorter than the context, and ones giving no output), skip and ELU
// epilogues, constant and replicate padding.
TEST(MimiConvCuda, KernelStepsAreLibtorchs) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  struct Shape {
    int64_t cin, cout, kernel, stride, dilation;
    std::vector<int64_t> chunks;
  };
  const std::vector<Shape> shapes = {
      {1, 64, 7, 1, 1, {1920, 1920}},        {64, 32, 3, 1, 2, {1920, 7, 1913}}, {32, 64, 1, 1, 1, {1920, 480}},
      {64, 128, 8, 4, 1, {1920, 1920, 3, 1}}, {512, 1024, 16, 8, 1, {16, 16}},    {1024, 512, 3, 1, 1, {2, 2, 1}},
      {512, 1024, 7, 1, 1, {2, 2, 2}},        {128, 256, 10, 5, 1, {480, 480}},   {64, 1, 7, 1, 1, {1920, 40}},
      {48, 20, 3, 1, 1, {100, 50, 3}},
  };
  std::mt19937 rng(3);
  for (const auto &[mode, filters, dtype] : conv_modes()) {
    ConvKernelsChosen chosen(mode, filters);
    for (const Shape &sh : shapes) {
      for (const PadMode pad : {PadMode::Constant, PadMode::Replicate}) {
        SCOPED_TRACE(std::string("kernels ") + mode + " filters " + filters + " " + at::toString(dtype) + " " +
                     std::to_string(sh.cin) + "->" +
                     std::to_string(sh.cout) + " kernel " + std::to_string(sh.kernel) +
                     (pad == PadMode::Replicate ? " replicate" : ""));
        ConvSpec s = spec_of({sh.kernel, sh.stride, sh.dilation, 1, pad}, sh.cin, sh.cout, true);
        const double range = 1.0 / std::sqrt(double(sh.cin * sh.kernel));
        const at::Tensor w = (range * at::randn({sh.cout, sh.cin, sh.kernel})).to(dtype).to(at::kFloat);
        const at::Tensor b = (0.1 * at::randn({sh.cout})).to(dtype).to(at::kFloat);
        Conv1d cpu(s, w, b), probe(s, w, b), gpu(s, w.to(at::kCUDA, dtype), b.to(at::kCUDA, dtype));
        ConvState cpu_state, probe_state, gpu_state;
        for (size_t n = 0; n < sh.chunks.size(); ++n) {
          SCOPED_TRACE("chunk " + std::to_string(n));
          const at::Tensor x = at::randn({1, sh.cin, sh.chunks[n]}).to(dtype).to(at::kFloat);
          const int64_t frames = probe.step(x, probe_state).size(2);
          ConvEpilogue e;
          e.raw = n % 2 == 0;
          e.elu = n > 0;
          if (n % 2 == 1) e.skip = at::randn({1, sh.cout, frames}).to(dtype).to(at::kFloat);
          ConvOutput want = cpu.step(x, cpu_state, e);
          ConvEpilogue ge = e;
          if (e.skip.defined()) ge.skip = e.skip.to(at::kCUDA, dtype);
          expect_outputs_match(gpu.step(x.to(at::kCUDA, dtype), gpu_state, ge), want, dtype);
        }
      }
    }
  }
}

// The CUDA transposed step kernel (cuda/conv_transpose1d_step.h) against
// libtorch's CPU step at the released decoder's sizes (and the depthwise
// upsampling): the overlap carried across chunks, also from and into
// libtorch's steps where a chunk is too short for the kernel (the kept
// overlap must then come from earlier steps), raw and ELU outputs.
TEST(MimiConvCuda, TransposedKernelStepsAreLibtorchs) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  struct Shape {
    int64_t cin, cout, kernel, stride, groups;
    std::vector<int64_t> chunks;
  };
  const std::vector<Shape> shapes = {
      {1024, 512, 16, 8, 1, {2, 2, 1}}, {512, 256, 12, 6, 1, {16, 16}}, {256, 128, 10, 5, 1, {96, 96}},
      {128, 64, 8, 4, 1, {480, 480}},   {512, 512, 4, 2, 512, {1, 1, 2}}, {6, 6, 3, 2, 1, {1, 3, 2}},
      {8, 8, 16, 4, 2, {1, 4, 2, 3}},   {256, 128, 10, 5, 1, {96, 7, 40}}, {48, 20, 6, 3, 1, {33, 64}},
  };
  for (const auto &[mode, filters, dtype] : conv_modes()) {
    ConvKernelsChosen chosen(mode, filters);
    for (const Shape &sh : shapes) {
      SCOPED_TRACE(std::string("kernels ") + mode + " filters " + filters + " " + at::toString(dtype) + " " +
                   std::to_string(sh.cin) + "->" +
                   std::to_string(sh.cout) + " kernel " + std::to_string(sh.kernel) + " stride " +
                   std::to_string(sh.stride));
      ConvSpec s = spec_of({sh.kernel, sh.stride, 1, sh.groups, PadMode::Constant}, sh.cin, sh.cout, true);
      const double range = 1.0 / std::sqrt(double(sh.cin / sh.groups * sh.kernel));
      const at::Tensor w = (range * at::randn({sh.cin, sh.cout / sh.groups, sh.kernel})).to(dtype).to(at::kFloat);
      const at::Tensor b = (0.1 * at::randn({sh.cout})).to(dtype).to(at::kFloat);
      ConvTranspose1d cpu(s, w, b), gpu(s, w.to(at::kCUDA, dtype), b.to(at::kCUDA, dtype));
      ConvTrState cpu_state, gpu_state;
      for (size_t n = 0; n < sh.chunks.size(); ++n) {
        SCOPED_TRACE("chunk " + std::to_string(n));
        const at::Tensor x = at::randn({1, sh.cin, sh.chunks[n]}).to(dtype).to(at::kFloat);
        ConvEpilogue e;
        e.raw = n % 2 == 0;
        e.elu = n > 0;
        ConvOutput want = cpu.step(x, cpu_state, e);
        expect_outputs_match(gpu.step(x.to(at::kCUDA, dtype), gpu_state, e), want, dtype);
        ASSERT_EQ(gpu_state.partial.sizes(), cpu_state.partial.sizes());
        EXPECT_LT(relative_error(gpu_state.partial, cpu_state.partial), step_tolerance(dtype));
      }
    }
  }
}
