// On a GPU: the fused decode-attention kernel against libtorch's attention
// over the same cache (written flags, pinned slots scored from the end of
// the context on split rows, fp8 bytes decoded), and the fp8 write kernel
// against the libtorch encoder. Skipped without CUDA or without the kernels
// (then the libtorch path is all there is).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "lm/decode_attention.h"
#include "lm/kv_layer.h"

using namespace personaplex;
using namespace personaplex::lm;

namespace {

// What the kernel computes, in fp32 with libtorch: q [R, H, 1, D].
at::Tensor reference(const DecodeQuery &in, const KvLayer &kv) {
  const KvLayer seen = kv.slots(0, in.span);
  const at::Tensor k = seen.read_keys(at::kFloat), v = seen.read_values(at::kFloat);
  const int64_t R = in.q.size(0);
  const double scale = 1.0 / std::sqrt(double(in.q.size(-1)));
  at::Tensor s = at::matmul(in.q.to(at::kFloat), k.transpose(-2, -1)) * scale;  // [R, H, 1, span]
  if (in.q_pin.defined()) {
    at::Tensor sp = at::matmul(in.q_pin.to(at::kFloat), k.transpose(-2, -1)) * scale;
    at::Tensor slots = at::arange(in.span, in.written.options().dtype(at::kLong));
    at::Tensor use = in.pinned.view({R, -1}).narrow(1, 0, in.span) & (slots < in.pinned_span).unsqueeze(0) &
                     in.split.view({R, 1});
    s = at::where(use.view({R, 1, 1, -1}), sp, s);
  }
  s = s.masked_fill(in.written.view({R, -1}).narrow(1, 0, in.span).logical_not().view({R, 1, 1, -1}),
                    -std::numeric_limits<float>::infinity());
  return at::matmul(at::softmax(s, -1), v);
}

KvLayer random_cache(int64_t R, int64_t H, int64_t slots, int64_t D, bool fp8, at::ScalarType dtype) {
  const at::TensorOptions cuda = at::TensorOptions(at::kCUDA).dtype(dtype);
  KvLayer kv = KvLayer::zeros(R, H, slots, D, fp8 ? KvFormat::kFp8 : KvFormat::kModelDtype, cuda);
  at::Tensor k = at::randn({R, H, slots, D}, cuda) * 2, v = at::randn({R, H, slots, D}, cuda);
  kv.write_range(0, k, v);
  return kv;
}

}  // namespace

TEST(DecodeAttention, CudaKernelIsLibtorchAttention) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(5);
  const at::TensorOptions flags = at::TensorOptions(at::kCUDA).dtype(at::kBool);
  int ran = 0;
  for (const int64_t D : {16, 64, 128}) {
    for (const bool fp8 : {false, true}) {
      for (const at::ScalarType dtype : {at::kBFloat16, at::kFloat}) {
        for (const auto &[R, H, allocated, span, pinned_span] :
             std::vector<std::array<int64_t, 5>>{{1, 2, 32, 32, 0}, {3, 4, 112, 96, 16}, {2, 32, 3008, 3008, 64},
                                                 {9, 3, 512, 400, 400}}) {
          SCOPED_TRACE("D " + std::to_string(D) + (fp8 ? " fp8" : "") + " " + std::string(at::toString(dtype)) +
                       " rows " + std::to_string(R) + " heads " + std::to_string(H) + " span " + std::to_string(span));
          const at::TensorOptions cuda = at::TensorOptions(at::kCUDA).dtype(dtype);
          const KvLayer kv = random_cache(R, H, allocated, D, fp8, dtype);
          DecodeQuery in;
          in.q = at::randn({R, H, 1, D}, cuda);
          in.written = at::rand({R, allocated}, flags.dtype(at::kFloat)) < 0.8;
          in.written.select(1, 0).fill_(true);  // every row sees a slot
          in.span = span;
          if (pinned_span > 0) {
            in.q_pin = at::randn({R, H, 1, D}, cuda);
            in.pinned = at::zeros({R, allocated}, flags);
            in.pinned.narrow(1, 0, pinned_span / 2 + 1).fill_(true);
            in.split = at::arange(R, flags.dtype(at::kLong)).remainder(2) == 0;
            in.pinned_span = pinned_span;
          }
          const std::optional<at::Tensor> y = fused_decode_attention(in, kv);
          if (!y) GTEST_SKIP() << "this build has no CUDA kernels";
          ++ran;
          ASSERT_EQ(y->sizes(), in.q.sizes());
          ASSERT_EQ(y->scalar_type(), dtype);
          const at::Tensor want = reference(in, kv);
          const double err = ((y->to(at::kFloat) - want).abs().max() / want.abs().max()).item<double>();
          EXPECT_LT(err, dtype == at::kBFloat16 ? 1e-2 : 1e-5);
          // Told where each row's written slots end, the kernel skips the
          // rest and gives the same bits: with every slot in play, and with
          // a cache written only a third of the way (a conversation's start).
          in.filled = written_extent(in.written);
          EXPECT_TRUE(at::equal(*fused_decode_attention(in, kv), *y));
          in.written.narrow(1, span / 3 + 1, allocated - span / 3 - 1).fill_(false);
          in.filled = at::Tensor();
          const at::Tensor early = *fused_decode_attention(in, kv);
          in.filled = written_extent(in.written);
          EXPECT_TRUE(at::equal(*fused_decode_attention(in, kv), early));
        }
      }
    }
  }
  EXPECT_EQ(ran, 3 * 2 * 2 * 4);
}

// One past each row's last written slot, 0 for a row with none; a single
// row's flags as one row.
TEST(DecodeAttention, WrittenExtentIsOnePastTheLastWrittenSlot) {
  at::Tensor written = at::zeros({3, 10}, at::kBool);
  written[0].narrow(0, 0, 4).fill_(true);
  written[1][2] = true;
  written[1][9] = true;
  const at::Tensor extent = written_extent(written);
  EXPECT_EQ(extent.scalar_type(), at::kInt);
  EXPECT_TRUE(at::equal(extent, at::tensor({4, 10, 0}, at::kInt)));
  EXPECT_TRUE(at::equal(written_extent(written[0]), at::tensor({4}, at::kInt)));
}

TEST(DecodeAttention, CudaFp8WriteIsTheEncoder) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(6);
  for (const at::ScalarType dtype : {at::kBFloat16, at::kFloat}) {
    const at::TensorOptions cuda = at::TensorOptions(at::kCUDA).dtype(dtype);
    const int64_t R = 5, H = 4, slots = 48, D = 128;
    const KvLayer kv = KvLayer::zeros(R, H, slots, D, KvFormat::kFp8, cuda);
    const at::Tensor k = at::randn({R, H, 1, D}, cuda) * at::linspace(0.01, 50, R, cuda).view({R, 1, 1, 1});
    const at::Tensor v = at::randn({R, H, 1, D}, cuda);
    const at::Tensor where = at::tensor({3, 0, 47, 12, 12}, at::kLong).to(at::kCUDA);
    kv.write_rows(where, k, v);  // the kernel where built, else the encoder
    for (int64_t r = 0; r < R; ++r) {
      const int64_t s = where[r].item<int64_t>();
      const Fp8Vectors ke = fp8_encode(k[r]), ve = fp8_encode(v[r]);
      // libtorch may divide by 448 as a product with its reciprocal.
      EXPECT_TRUE(at::allclose(kv.key_scales[r].select(1, s), ke.scales.view({H}), 1e-6, 0.0));
      EXPECT_TRUE(at::allclose(kv.value_scales[r].select(1, s), ve.scales.view({H}), 1e-6, 0.0));
      // Ties, and scales a rounding apart, may round the other way: at most
      // one code apart, rarely.
      const at::Tensor kd = (kv.keys[r].select(1, s).to(at::kInt) - ke.bytes.view({H, D}).to(at::kInt)).abs();
      const at::Tensor vd = (kv.values[r].select(1, s).to(at::kInt) - ve.bytes.view({H, D}).to(at::kInt)).abs();
      EXPECT_LE(kd.max().item<int>(), 1);
      EXPECT_LE(vd.max().item<int>(), 1);
      EXPECT_LE(kd.sum().item<int>() + vd.sum().item<int>(), H * D / 50);
    }
    // Other slots are untouched.
    EXPECT_EQ(kv.key_scales.select(2, 5).abs().sum().item<float>(), 0.0f);
  }
}

TEST(DecodeAttention, CudaWriteIsTheScatter) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(7);
  for (const at::ScalarType dtype : {at::kBFloat16, at::kFloat}) {
    const at::TensorOptions cuda = at::TensorOptions(at::kCUDA).dtype(dtype);
    const int64_t R = 3, H = 4, slots = 40, D = 64;
    const KvLayer kv = KvLayer::zeros(R, H, slots, D, KvFormat::kModelDtype, cuda);
    // As the step gives them: k contiguous, v a strided view of the projection.
    const at::Tensor k = at::randn({R, H, 1, D}, cuda);
    const at::Tensor v = at::randn({R, 1, 3, H, D}, cuda).permute({2, 0, 3, 1, 4})[2];
    // Each row's slot, read with a stride (a column of the step's integers).
    const at::Tensor where = at::tensor({5, 39, 0, 1, 7, 2}, at::kLong).to(at::kCUDA).view({R, 2}).select(1, 0);
    kv.write_rows(where, k, v);  // the kernel where built, else libtorch's scatter
    for (int64_t r = 0; r < R; ++r) {
      const int64_t s = where[r].item<int64_t>();
      EXPECT_TRUE(at::equal(kv.keys[r].select(1, s), k[r].select(1, 0)));
      EXPECT_TRUE(at::equal(kv.values[r].select(1, s), v[r].select(1, 0)));
    }
    // Nothing else written.
    EXPECT_EQ(kv.keys.ne(0).sum().item<int64_t>(), k.ne(0).sum().item<int64_t>());
    EXPECT_EQ(kv.values.ne(0).sum().item<int64_t>(), v.ne(0).sum().item<int64_t>());
  }
}
