#include "cuda/conv1d_step.h"

#include <cuda_bf16.h>

#include <cstdint>
#include <type_traits>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"
#include "cuda/mma_tile.cuh"
#include "cuda/warps_per_sum.h"

namespace personaplex::cuda {
namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32;
constexpr int kTaps = 8;  // terms of a sum whose loads a thread issues together

// The sum's way out: bias, rounding, skip, ELU, as libtorch's launches
// round them.
template <typename T>
__device__ __forceinline__ void finish(const Conv1dStep &a, int b, int co, int t, float sum) {
  if (a.bias) sum += to_float(static_cast<const T *>(a.bias)[co]);
  float y = to_float(from_float<T>(sum));
  const size_t at = (size_t(b) * a.out_channels + co) * a.out_length + t;
  if (a.skip) y = to_float(from_float<T>(to_float(static_cast<const T *>(a.skip)[at]) + y));
  if (a.out) static_cast<T *>(a.out)[at] = from_float<T>(y);
  if (a.out_elu) {
    const float e = y <= 0.0f ? expm1f(y) * a.elu_alpha : y;
    static_cast<T *>(a.out_elu)[at] = from_float<T>(e);
  }
}

// Element t of channel c, row b, of the kept context followed by x.
template <typename T>
__device__ __forceinline__ float window_at(const Conv1dStep &a, const T *previous, const T *x, int c, int pos) {
  return to_float(pos < a.previous_length ? previous[size_t(c) * a.previous_length + pos]
                                          : x[c * a.x_channel_stride + pos - a.previous_length]);
}

// A thread per output, for short sums over long outputs (the first layers,
// at the sample rate): lanes of a warp share an output channel, time
// running fastest, so weight loads are broadcasts and input loads
// neighbours. kChannels channels' sums kept apart so that their loads
// overlap.
template <typename T>
__global__ void __launch_bounds__(kThreads) conv_thread_kernel(Conv1dStep a) {
  constexpr int kChannels = 4;
  wait_for_previous();
  start_next();
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= int64_t(a.batch) * a.out_channels * a.out_length) return;
  const int t = int(i % a.out_length), co = int(i / a.out_length % a.out_channels);
  const int b = int(i / (int64_t(a.out_length) * a.out_channels));
  const T *w = static_cast<const T *>(a.weight) + size_t(co) * a.in_channels * a.kernel;
  const T *previous = static_cast<const T *>(a.previous) + size_t(b) * a.in_channels * a.previous_length;
  const T *x = static_cast<const T *>(a.x) + b * a.x_batch_stride;
  const int start = t * a.stride;
  float sums[kChannels] = {};
  for (int c0 = 0; c0 < a.in_channels; c0 += kChannels)
    for (int k = 0; k < a.kernel; ++k) {
      const int pos = start + k * a.dilation;
#pragma unroll
      for (int j = 0; j < kChannels; ++j) {
        const int c = c0 + j;
        if (c < a.in_channels)
          sums[j] = fmaf(to_float(w[c * a.kernel + k]), window_at<T>(a, previous, x, c, pos), sums[j]);
      }
    }
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < kChannels; ++j) sum += sums[j];
  finish<T>(a, b, co, t, sum);
}

// A job is (row, output channel, kOutputs neighbouring outputs); its
// threads (one warp or several) split the sum over (input channel, tap),
// taken in the weight's own order, so that a warp's weight loads are one
// run of memory and its input loads a few runs (a channel's taps). Each
// thread keeps a sum per output (independent, so its loads overlap); the
// job's warps add theirs through shared memory. Wide jobs for the deep
// layers' long sums and few outputs, where the weights are what is read.
template <typename T, int kOutputs>
__global__ void __launch_bounds__(kThreads) conv_reduce_kernel(Conv1dStep a, int warps_per_job) {
  __shared__ float partial[kWarps][kOutputs];
  wait_for_previous();
  start_next();
  const int threads = 32 * warps_per_job, local = threadIdx.x % threads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int groups = (a.out_length + kOutputs - 1) / kOutputs;
  const int64_t job = int64_t(blockIdx.x) * (kWarps / warps_per_job) + threadIdx.x / threads;
  const bool active = job < int64_t(a.batch) * a.out_channels * groups;
  const int t0 = active ? int(job % groups) * kOutputs : 0, co = active ? int(job / groups % a.out_channels) : 0;
  const int b = active ? int(job / (int64_t(groups) * a.out_channels)) : 0;
  const int n = min(kOutputs, a.out_length - t0), K = a.kernel, R = active ? a.in_channels * K : 0;
  const T *w = static_cast<const T *>(a.weight) + size_t(co) * a.in_channels * K;
  const T *previous = static_cast<const T *>(a.previous) + size_t(b) * a.in_channels * a.previous_length;
  const T *x = static_cast<const T *>(a.x) + b * a.x_batch_stride;
  // This thread's (channel, tap) and how far each turn moves it.
  int c = local / K, k = local % K;
  const int dc = threads / K, dk = threads % K;
  float sums[kOutputs] = {};
  for (int r = local; r < R; r += kTaps * threads) {
    float wk[kTaps], in[kTaps][kOutputs];
#pragma unroll
    for (int q = 0; q < kTaps; ++q) {
      const bool inside = r + q * threads < R;
      wk[q] = inside ? to_float(w[r + q * threads]) : 0.0f;
      const int at = t0 * a.stride + k * a.dilation;
#pragma unroll
      for (int u = 0; u < kOutputs; ++u)
        in[q][u] = inside && u < n ? window_at<T>(a, previous, x, c, at + u * a.stride) : 0.0f;
      c += dc, k += dk;
      if (k >= K) k -= K, ++c;
    }
#pragma unroll
    for (int q = 0; q < kTaps; ++q)
#pragma unroll
      for (int u = 0; u < kOutputs; ++u) sums[u] = fmaf(wk[q], in[q][u], sums[u]);
  }
#pragma unroll
  for (int u = 0; u < kOutputs; ++u)
    for (int off = 16; off > 0; off /= 2) sums[u] += __shfl_xor_sync(0xffffffffu, sums[u], off);
  if (warps_per_job > 1) {
    if (lane < kOutputs) {
#pragma unroll
      for (int u = 0; u < kOutputs; ++u)
        if (u == lane) partial[warp][u] = sums[u];
    }
    __syncthreads();
    if (local >= 32) return;
#pragma unroll
    for (int u = 0; u < kOutputs; ++u) {
      sums[u] = 0.0f;
      for (int j = 0; j < warps_per_job; ++j) sums[u] += partial[warp + j][u];
    }
  }
  if (!active) return;
#pragma unroll
  for (int u = 0; u < kOutputs; ++u)
    if (u < n && lane == u) finish<T>(a, b, co, t0 + u, sums[u]);
}

// The bits of bf16 element `pos` of channel c (a row's kept context, then
// x).
__device__ __forceinline__ uint32_t window_bits(const Conv1dStep &a, const uint16_t *previous, const uint16_t *x,
                                                int c, int pos) {
  return pos < a.previous_length ? previous[size_t(c) * a.previous_length + pos]
                                 : x[c * a.x_channel_stride + pos - a.previous_length];
}

// bf16 on the tensor cores, for the long outputs of the layers near the
// sample rate, where a sum a thread reads an input a product and libtorch's
// tensor-core convolution reuses each: the step as a product of the
// weights [C_out, (tap, channel)] and the window's columns [(tap,
// channel), time], a tile of 16 output channels by 16 times a block
// (cuda/mma_tile.cuh). The sum runs tap by tap, 16 input channels a step
// (so C_in % 16 == 0), a step's operands gathered straight from the
// weights and the window (small layers, their reads cached).
__global__ void __launch_bounds__(kTileWarps * 32) conv_mma_kernel(Conv1dStep a) {
  __shared__ TileSums sums;
  wait_for_previous();
  start_next();
  const int lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  const int co0 = blockIdx.y * 16, t0 = blockIdx.x * 16, b = blockIdx.z;
  const int C = a.in_channels, K = a.kernel;
  const uint16_t *w = static_cast<const uint16_t *>(a.weight);
  const uint16_t *previous = static_cast<const uint16_t *>(a.previous) + size_t(b) * C * a.previous_length;
  const uint16_t *x = static_cast<const uint16_t *>(a.x) + b * a.x_batch_stride;
  const bool row_lo = co0 + g < a.out_channels, row_hi = co0 + g + 8 < a.out_channels;
  const size_t w_lo = size_t(co0 + g) * C * K, w_hi = size_t(co0 + g + 8) * C * K;
  float acc[2][4] = {};
  // Step s: tap s / (C / 16), channels c..c+3 of this lane.
  tile_products(C / 16 * K, [&](int s, uint32_t (&f)[8]) {
    const int k = s / (C / 16), c = s % (C / 16) * 16 + 4 * t4;
    term_pairs(row_lo, [&](int i) -> uint32_t { return w[w_lo + size_t(c + i) * K + k]; }, f[0], f[2]);
    term_pairs(row_hi, [&](int i) -> uint32_t { return w[w_hi + size_t(c + i) * K + k]; }, f[1], f[3]);
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      const int t = t0 + nt * 8 + g, pos = t * a.stride + k * a.dilation;
      term_pairs(t < a.out_length, [&](int i) { return window_bits(a, previous, x, c + i, pos); }, f[4 + 2 * nt],
                 f[5 + 2 * nt]);
    }
  }, acc);
  const float sum = tile_sum(sums, acc);
  const int co = co0 + threadIdx.x / 16, t = t0 + threadIdx.x % 16;
  if (co < a.out_channels && t < a.out_length) finish<__nv_bfloat16>(a, b, co, t, sum);
}

template <typename T, int kOutputs>
cudaError_t launch_reduce(const Conv1dStep &a, cudaStream_t stream) {
  const int64_t jobs = int64_t(a.batch) * a.out_channels * ((a.out_length + kOutputs - 1) / kOutputs);
  // A thread's share of a sum: at most 32 terms, at least 8.
  const int warps = warps_per_sum(int64_t(a.in_channels) * a.kernel, jobs, 32, 8, kWarps);
  const int per_block = kWarps / warps;
  return launch_chained(conv_reduce_kernel<T, kOutputs>, dim3(unsigned((jobs + per_block - 1) / per_block)),
                        dim3(kThreads), 0, stream, a, warps);
}

template <typename T>
cudaError_t launch(const Conv1dStep &a, cudaStream_t stream) {
  // Long outputs of bf16: the tensor cores (see conv_mma_kernel).
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if (conv1d_step_on_tensor_cores(a.floats, a.in_channels, a.out_length))
      return launch_chained(conv_mma_kernel,
                            dim3(unsigned((a.out_length + 15) / 16), unsigned((a.out_channels + 15) / 16),
                                 unsigned(a.batch)),
                            dim3(kTileWarps * 32), 0, stream, a);
  }
  // Short sums over many outputs: a thread an output. Otherwise threads
  // share each output's sum.
  if (int64_t(a.in_channels) * a.kernel <= 256 && a.out_length >= 64) {
    const int64_t outputs = int64_t(a.batch) * a.out_channels * a.out_length;
    return launch_chained(conv_thread_kernel<T>, dim3(unsigned((outputs + kThreads - 1) / kThreads)),
                          dim3(kThreads), 0, stream, a);
  }
  if (a.out_length <= 1) return launch_reduce<T, 1>(a, stream);
  if (a.out_length <= 2) return launch_reduce<T, 2>(a, stream);
  if (a.out_length <= 4) return launch_reduce<T, 4>(a, stream);
  return launch_reduce<T, 8>(a, stream);
}

}  // namespace

bool conv1d_step_on_tensor_cores(Floats floats, int in_channels, int out_length) {
  return floats == Floats::kBFloat16 && in_channels % 16 == 0 && out_length >= kConvMmaMinOutputs;
}

cudaError_t conv1d_step(const Conv1dStep &a, cudaStream_t stream) {
  if (a.batch <= 0 || a.in_channels <= 0 || a.out_channels <= 0 || a.kernel <= 0 || a.stride <= 0 ||
      a.dilation <= 0 || a.out_length <= 0 || a.previous_length < 0 || (a.previous_length > 0 && !a.previous) ||
      (!a.out && !a.out_elu) || int64_t(a.batch) * a.out_channels * a.out_length > (int64_t(1) << 40))
    return cudaErrorInvalidValue;
  return a.floats == Floats::kBFloat16 ? launch<__nv_bfloat16>(a, stream) : launch<float>(a, stream);
}

}  // namespace personaplex::cuda
