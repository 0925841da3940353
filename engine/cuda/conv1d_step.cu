#include "cuda/conv1d_step.h"

#include <cuda_bf16.h>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32;
constexpr int kTaps = 8;  // taps of a channel whose loads a lane issues together

template <typename T>
__device__ __forceinline__ float input_at(const Conv1dStep &a, int b, int c, int t) {
  if (t < a.previous_length)
    return to_float(static_cast<const T *>(a.previous)[(size_t(b) * a.in_channels + c) * a.previous_length + t]);
  return to_float(static_cast<const T *>(a.x)[b * a.x_batch_stride + c * a.x_channel_stride + t - a.previous_length]);
}

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

// A thread per output, for few input channels: its window's products in
// order. Lanes of a warp share an output channel (time runs fastest), so
// the weight loads are broadcasts and the input loads neighbours.
template <typename T>
__global__ void __launch_bounds__(kThreads) conv_thread_kernel(Conv1dStep a) {
  wait_for_previous();
  start_next();
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= int64_t(a.batch) * a.out_channels * a.out_length) return;
  const int t = int(i % a.out_length), co = int(i / a.out_length % a.out_channels);
  const int b = int(i / (int64_t(a.out_length) * a.out_channels));
  const T *w = static_cast<const T *>(a.weight) + size_t(co) * a.in_channels * a.kernel;
  // The window's first taps fall in the kept context, the rest in x.
  const int start = t * a.stride, P = a.previous_length;
  const int split = start >= P ? 0 : min(a.kernel, (P - start + a.dilation - 1) / a.dilation);
  const T *previous = static_cast<const T *>(a.previous) + size_t(b) * a.in_channels * P + start;
  const T *x = static_cast<const T *>(a.x) + b * a.x_batch_stride + start - P;
  float sum = 0.0f;
  for (int c = 0; c < a.in_channels; ++c, w += a.kernel, previous += P, x += a.x_channel_stride) {
    for (int k = 0; k < split; ++k) sum = fmaf(to_float(w[k]), to_float(previous[k * a.dilation]), sum);
    for (int k = split; k < a.kernel; ++k) sum = fmaf(to_float(w[k]), to_float(x[k * a.dilation]), sum);
  }
  finish<T>(a, b, co, t, sum);
}

// A warp per (row, output channel, kOutputs neighbouring outputs): the
// lanes split the input channels, each summing its channels' taps for every
// output in registers (independent sums, so its loads overlap), then the
// warp adds the lanes' sums. Enough warps for the narrow outputs of the
// deep layers, and short sums for the long windows.
template <typename T, int kOutputs>
__global__ void __launch_bounds__(kThreads) conv_lanes_kernel(Conv1dStep a) {
  wait_for_previous();
  start_next();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int groups = (a.out_length + kOutputs - 1) / kOutputs;
  const int64_t job = int64_t(blockIdx.x) * kWarps + warp;
  if (job >= int64_t(a.batch) * a.out_channels * groups) return;
  const int t0 = int(job % groups) * kOutputs, co = int(job / groups % a.out_channels);
  const int b = int(job / (int64_t(groups) * a.out_channels));
  const int n = min(kOutputs, a.out_length - t0), P = a.previous_length, K = a.kernel;
  float sums[kOutputs] = {};
  const T *w = static_cast<const T *>(a.weight) + size_t(co) * a.in_channels * K;
  for (int c = lane; c < a.in_channels; c += 32) {
    const T *previous = static_cast<const T *>(a.previous) + (size_t(b) * a.in_channels + c) * P;
    const T *x = static_cast<const T *>(a.x) + b * a.x_batch_stride + c * a.x_channel_stride - P;
    const T *wc = w + size_t(c) * K;
    // kTaps taps at a time, every load of them issued before the first
    // product: a lane's sums would otherwise wait on one load after another.
    for (int k0 = 0; k0 < K; k0 += kTaps) {
      float wk[kTaps], in[kTaps][kOutputs];
#pragma unroll
      for (int q = 0; q < kTaps; ++q) {
        const int k = k0 + q, at = t0 * a.stride + k * a.dilation;
        wk[q] = k < K ? to_float(wc[k]) : 0.0f;
#pragma unroll
        for (int u = 0; u < kOutputs; ++u) {
          const int pos = at + u * a.stride;
          in[q][u] = k < K && u < n ? to_float(pos < P ? previous[pos] : x[pos]) : 0.0f;
        }
      }
#pragma unroll
      for (int q = 0; q < kTaps; ++q)
#pragma unroll
        for (int u = 0; u < kOutputs; ++u) sums[u] = fmaf(wk[q], in[q][u], sums[u]);
    }
  }
#pragma unroll
  for (int u = 0; u < kOutputs; ++u)
    for (int off = 16; off > 0; off /= 2) sums[u] += __shfl_xor_sync(0xffffffffu, sums[u], off);
#pragma unroll
  for (int u = 0; u < kOutputs; ++u)
    if (u < n && lane == u) finish<T>(a, b, co, t0 + u, sums[u]);
}

template <typename T, int kOutputs>
cudaError_t launch_lanes(const Conv1dStep &a, cudaStream_t stream) {
  const int64_t jobs = int64_t(a.batch) * a.out_channels * ((a.out_length + kOutputs - 1) / kOutputs);
  return launch_chained(conv_lanes_kernel<T, kOutputs>, dim3(unsigned((jobs + kWarps - 1) / kWarps)),
                        dim3(kThreads), 0, stream, a);
}

template <typename T>
cudaError_t launch(const Conv1dStep &a, cudaStream_t stream) {
  // Few input channels (the first layer's one): a thread an output, its
  // window short. Otherwise the lanes share the channels.
  if (a.in_channels < 16) {
    const int64_t outputs = int64_t(a.batch) * a.out_channels * a.out_length;
    return launch_chained(conv_thread_kernel<T>, dim3(unsigned((outputs + kThreads - 1) / kThreads)),
                          dim3(kThreads), 0, stream, a);
  }
  if (a.out_length <= 2) return launch_lanes<T, 2>(a, stream);
  if (a.out_length <= 4) return launch_lanes<T, 4>(a, stream);
  return launch_lanes<T, 8>(a, stream);
}

}  // namespace

cudaError_t conv1d_step(const Conv1dStep &a, cudaStream_t stream) {
  if (a.batch <= 0 || a.in_channels <= 0 || a.out_channels <= 0 || a.kernel <= 0 || a.stride <= 0 ||
      a.dilation <= 0 || a.out_length <= 0 || a.previous_length < 0 || (a.previous_length > 0 && !a.previous) ||
      (!a.out && !a.out_elu) || int64_t(a.batch) * a.out_channels * a.out_length > (int64_t(1) << 40))
    return cudaErrorInvalidValue;
  return a.floats == Floats::kBFloat16 ? launch<__nv_bfloat16>(a, stream) : launch<float>(a, stream);
}

}  // namespace personaplex::cuda
