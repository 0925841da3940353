#include "cuda/conv_transpose1d_step.h"

#include <cuda_bf16.h>

#include <cstdint>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"
#include "cuda/mma_tile.cuh"
#include "cuda/warps_per_sum.h"

namespace personaplex::cuda {
namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32, kMaxS = kConvTransposeMaxStride;

// Output r of period q (output q * stride + r of the full result): bias,
// rounding, the carried overlap, then out (and its ELU) or the new overlap.
template <typename T>
__device__ __forceinline__ void finish(const ConvTranspose1dStep &a, int b, int co, int q, int r, float sum) {
  const int S = a.stride, overlap = a.kernel - S, outputs = a.length * S, o = q * S + r;
  if (o >= outputs + overlap) return;
  const float bias = a.bias ? to_float(static_cast<const T *>(a.bias)[co]) : 0.0f;
  float y = to_float(from_float<T>(sum + bias));
  const size_t row = (size_t(b) * a.out_channels + co) * overlap;
  if (a.carry && o < overlap) {
    const float kept = to_float(static_cast<const T *>(a.partial)[row + o]);
    y = to_float(from_float<T>(y + to_float(from_float<T>(kept - bias))));
  }
  if (o >= outputs) {
    static_cast<T *>(a.partial_out)[row + o - outputs] = from_float<T>(y);
    return;
  }
  const size_t at = (size_t(b) * a.out_channels + co) * outputs + o;
  if (a.out) static_cast<T *>(a.out)[at] = from_float<T>(y);
  if (a.out_elu) static_cast<T *>(a.out_elu)[at] = from_float<T>(y <= 0.0f ? expm1f(y) * a.elu_alpha : y);
}

// A job is (row, output channel, input step p): the stride's outputs of
// period p, and for the first periods (p < the overlap's periods) also
// those of period length + p, which become the new overlap.
//
// The job's threads (one warp or several) split its input channels; a
// channel gives each output of the period kMaxTaps taps at most (its row
// of weights, contiguous, and the inputs p, p - 1, ...), kChannels
// channels' loads issued together. The job's warps add their sums through
// shared memory.
template <typename T, int kMaxTaps>
__global__ void __launch_bounds__(kThreads) conv_transpose_kernel(ConvTranspose1dStep a, int warps_per_job) {
  constexpr int kChannels = 8 / kMaxTaps;
  __shared__ float shared[kWarps][kMaxS];
  wait_for_previous();
  start_next();
  const int threads = 32 * warps_per_job, local = threadIdx.x % threads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int S = a.stride, K = a.kernel, L = a.length, tail = (K - S + S - 1) / S;
  const int64_t job = int64_t(blockIdx.x) * (kWarps / warps_per_job) + threadIdx.x / threads;
  const bool active = job < int64_t(a.batch) * a.out_channels * L;
  const int p = active ? int(job % L) : 0, co = active ? int(job / L % a.out_channels) : 0;
  const int b = active ? int(job / (int64_t(L) * a.out_channels)) : 0;
  const int cout_group = a.out_channels / a.groups, cin_group = a.in_channels / a.groups, g = co / cout_group;
  const size_t w_channel = size_t(cout_group) * K;
  const T *w = static_cast<const T *>(a.weight) + size_t(g) * cin_group * w_channel + size_t(co % cout_group) * K;
  const T *x = static_cast<const T *>(a.x) + b * a.x_batch_stride + int64_t(g) * cin_group * a.x_channel_stride;
  for (int pass = 0; pass < (tail > 0 ? 2 : 1); ++pass) {
    const int q = pass == 0 ? p : L + p;
    const bool live = active && (pass == 0 || p < tail);
    float sums[kMaxS] = {};
    for (int c0 = live ? local : cin_group; c0 < cin_group; c0 += kChannels * threads) {
      float wv[kChannels][kMaxTaps][kMaxS], xv[kChannels][kMaxTaps];
#pragma unroll
      for (int h = 0; h < kChannels; ++h) {
        const int c = c0 + h * threads;
#pragma unroll
        for (int j = 0; j < kMaxTaps; ++j) {
          const int t = q - j;
          xv[h][j] = c < cin_group && t >= 0 && t < L ? to_float(x[c * a.x_channel_stride + t]) : 0.0f;
#pragma unroll
          for (int r = 0; r < kMaxS; ++r) {
            const int k = r + j * S;
            wv[h][j][r] = c < cin_group && r < S && k < K ? to_float(w[c * w_channel + k]) : 0.0f;
          }
        }
      }
#pragma unroll
      for (int h = 0; h < kChannels; ++h)
#pragma unroll
        for (int j = 0; j < kMaxTaps; ++j)
#pragma unroll
          for (int r = 0; r < kMaxS; ++r) sums[r] = fmaf(wv[h][j][r], xv[h][j], sums[r]);
    }
#pragma unroll
    for (int r = 0; r < kMaxS; ++r)
      for (int off = 16; off > 0; off /= 2) sums[r] += __shfl_xor_sync(0xffffffffu, sums[r], off);
    if (warps_per_job > 1) {
      if (lane == 0)
#pragma unroll
        for (int r = 0; r < kMaxS; ++r) shared[warp][r] = sums[r];
      __syncthreads();
#pragma unroll
      for (int r = 0; r < kMaxS; ++r) {
        sums[r] = 0.0f;
        for (int j = 0; j < warps_per_job; ++j) sums[r] += shared[warp - warp % warps_per_job + j][r];
      }
      __syncthreads();  // read before the next pass writes
    }
    if (live && local < 32)
#pragma unroll
      for (int r = 0; r < kMaxS; ++r)
        if (r < S && lane == r) finish<T>(a, b, co, q, r, sums[r]);
  }
}

// bf16 on the tensor cores, for long inputs (the layers near the sample
// rate): for each phase r of the stride, outputs q * stride + r are the
// product of the weights [C_out, (tap j, channel)] (weight[c, co, r + j *
// stride]) and the inputs [(tap j, channel), period q] (x[c, q - j]); a
// block takes a tile of 16 output channels by 16 periods of one phase
// (cuda/mma_tile.cuh), steps of 16 input channels, and finishes them as
// the CUDA-core kernel does. Operands gathered straight from the weights
// and the input (small layers, their reads cached).
__global__ void __launch_bounds__(kTileWarps * 32) conv_transpose_mma_kernel(ConvTranspose1dStep a) {
  __shared__ TileSums sums;
  wait_for_previous();
  start_next();
  const int lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  const int S = a.stride, K = a.kernel, L = a.length, C = a.in_channels, Co = a.out_channels;
  const int periods = L + (K - S + S - 1) / S;
  const int q0 = blockIdx.x * 16, co0 = blockIdx.y * 16, b = blockIdx.z / S, r = blockIdx.z % S;
  const uint16_t *w = static_cast<const uint16_t *>(a.weight);
  const uint16_t *x = static_cast<const uint16_t *>(a.x) + b * a.x_batch_stride;
  const bool row_lo = co0 + g < Co, row_hi = co0 + g + 8 < Co;
  float acc[2][4] = {};
  // Step s: tap j = s / (C / 16), channels c..c+3 of this lane.
  tile_products((K - r + S - 1) / S * (C / 16), [&](int s, uint32_t (&f)[8]) {
    const int j = s / (C / 16), c = s % (C / 16) * 16 + 4 * t4, k = r + j * S;
    term_pairs(row_lo, [&](int i) -> uint32_t { return w[(size_t(c + i) * Co + co0 + g) * K + k]; }, f[0], f[2]);
    term_pairs(row_hi, [&](int i) -> uint32_t { return w[(size_t(c + i) * Co + co0 + g + 8) * K + k]; }, f[1], f[3]);
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      const int t = q0 + nt * 8 + g - j;
      term_pairs(t >= 0 && t < L, [&](int i) -> uint32_t { return x[(c + i) * a.x_channel_stride + t]; },
                 f[4 + 2 * nt], f[5 + 2 * nt]);
    }
  }, acc);
  const float sum = tile_sum(sums, acc);
  const int co = co0 + threadIdx.x / 16, q = q0 + threadIdx.x % 16;
  if (co < Co && q < periods) finish<__nv_bfloat16>(a, b, co, q, r, sum);
}

template <typename T, int kMaxTaps>
cudaError_t launch_taps(const ConvTranspose1dStep &a, cudaStream_t stream) {
  const int64_t jobs = int64_t(a.batch) * a.out_channels * a.length;
  // A thread's share: at most 16 input channels, at least 4.
  const int warps = warps_per_sum(a.in_channels / a.groups, jobs, 16, 4, kWarps);
  const int per_block = kWarps / warps;
  return launch_chained(conv_transpose_kernel<T, kMaxTaps>, dim3(unsigned((jobs + per_block - 1) / per_block)),
                        dim3(kThreads), 0, stream, a, warps);
}

template <typename T>
cudaError_t launch(const ConvTranspose1dStep &a, cudaStream_t stream) {
  const int taps = (a.kernel + a.stride - 1) / a.stride;
  if (taps <= 1) return launch_taps<T, 1>(a, stream);
  if (taps <= 2) return launch_taps<T, 2>(a, stream);
  return launch_taps<T, 4>(a, stream);
}

}  // namespace

bool conv_transpose1d_step_on_tensor_cores(const ConvTranspose1dStep &a) {
  return a.floats == Floats::kBFloat16 && a.groups == 1 && a.in_channels % 16 == 0 &&
         a.length >= kConvTransposeMmaMinLength;
}

cudaError_t conv_transpose1d_step(const ConvTranspose1dStep &a, cudaStream_t stream) {
  const int overlap = a.kernel - a.stride;
  if (a.batch <= 0 || a.in_channels <= 0 || a.out_channels <= 0 || a.groups <= 0 || a.in_channels % a.groups ||
      a.out_channels % a.groups || a.stride <= 0 || a.stride > kMaxS || a.kernel < a.stride ||
      a.kernel > 4 * a.stride || a.length <= 0 || int64_t(a.length) * a.stride < overlap ||
      (overlap > 0 && (!a.partial_out || (a.carry && !a.partial))) || (!a.out && !a.out_elu) ||
      int64_t(a.batch) * a.out_channels * a.length > (int64_t(1) << 40))
    return cudaErrorInvalidValue;
  if (conv_transpose1d_step_on_tensor_cores(a)) {
    const int periods = a.length + (overlap + a.stride - 1) / a.stride;
    return launch_chained(conv_transpose_mma_kernel,
                          dim3(unsigned((periods + 15) / 16), unsigned((a.out_channels + 15) / 16),
                               unsigned(a.batch * a.stride)),
                          dim3(kTileWarps * 32), 0, stream, a);
  }
  return a.floats == Floats::kBFloat16 ? launch<__nv_bfloat16>(a, stream) : launch<float>(a, stream);
}

}  // namespace personaplex::cuda
