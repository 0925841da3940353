#include "cuda/conv1d_step.h"

#include <cuda_bf16.h>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32;
// Outputs a warp's lanes keep at once in the narrow-output kernel.
constexpr int kWarpOutputs = 16;

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

// A thread per output: its window's products in order. Lanes of a warp
// share an output channel (time runs fastest), so the weight loads are
// broadcasts and the input loads neighbours.
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

// A warp per (row, output channel) for few outputs and long windows: the
// lanes split the window (in_channels * kernel weights, read once, in
// order) and each keeps up to kWarpOutputs sums, added across the warp.
template <typename T>
__global__ void __launch_bounds__(kThreads) conv_warp_kernel(Conv1dStep a) {
  wait_for_previous();
  start_next();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t job = int64_t(blockIdx.x) * kWarps + warp;
  if (job >= int64_t(a.batch) * a.out_channels) return;
  const int co = int(job % a.out_channels), b = int(job / a.out_channels);
  const int window = a.in_channels * a.kernel;
  const T *w = static_cast<const T *>(a.weight) + size_t(co) * window;
  for (int t0 = 0; t0 < a.out_length; t0 += kWarpOutputs) {
    const int n = min(kWarpOutputs, a.out_length - t0);
    float sums[kWarpOutputs] = {};
    for (int j = lane; j < window; j += 32) {
      const int c = j / a.kernel, k = j % a.kernel;
      const float wj = to_float(w[j]);
#pragma unroll
      for (int u = 0; u < kWarpOutputs; ++u)
        if (u < n) sums[u] = fmaf(wj, input_at<T>(a, b, c, (t0 + u) * a.stride + k * a.dilation), sums[u]);
    }
#pragma unroll
    for (int u = 0; u < kWarpOutputs; ++u)
      for (int off = 16; off > 0; off /= 2) sums[u] += __shfl_xor_sync(0xffffffffu, sums[u], off);
#pragma unroll
    for (int u = 0; u < kWarpOutputs; ++u)
      if (u < n && lane == u) finish<T>(a, b, co, t0 + u, sums[u]);
  }
}

template <typename T>
cudaError_t launch(const Conv1dStep &a, cudaStream_t stream) {
  const int64_t outputs = int64_t(a.batch) * a.out_channels * a.out_length;
  // Few outputs over long windows: a thread each would leave the GPU idle
  // while each sums thousands of products.
  if (a.out_length <= kWarpOutputs && outputs < 32 * 1024) {
    const int64_t jobs = int64_t(a.batch) * a.out_channels;
    return launch_chained(conv_warp_kernel<T>, dim3(unsigned((jobs + kWarps - 1) / kWarps)), dim3(kThreads), 0,
                          stream, a);
  }
  return launch_chained(conv_thread_kernel<T>, dim3(unsigned((outputs + kThreads - 1) / kThreads)), dim3(kThreads),
                        0, stream, a);
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
