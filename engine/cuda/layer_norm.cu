#include "cuda/layer_norm.h"

#include <cuda_bf16.h>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kPerThread = 8;
constexpr int kMaxDim = kThreads * kPerThread;

// The sum of every thread's value, on every thread.
__device__ float block_sum(float v, float *warps) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // warps[] may still be read from a previous sum
  if (lane == 0) warps[warp] = v;
  __syncthreads();
  v = lane < kThreads / 32 ? warps[lane] : 0.0f;
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// One block a row of up to kThreads * kPerThread elements, kept in
// registers: every load of the row (and of the constant weights, before the
// wait) issued at once, as a row's one block needs at batch 1. Then its
// mean, its variance about the mean, the normed row.
template <typename T>
__global__ void __launch_bounds__(kThreads) layer_norm_kernel(LayerNorm a) {
  __shared__ float warps[kThreads / 32];
  const T *weight = static_cast<const T *>(a.weight), *bias = static_cast<const T *>(a.bias);
  const T *scale = static_cast<const T *>(a.scale);
  float g[kPerThread], be[kPerThread], sc[kPerThread];
#pragma unroll
  for (int e = 0; e < kPerThread; ++e) {
    const int i = threadIdx.x + e * kThreads;
    const bool in = i < a.dim;
    g[e] = in ? to_float(weight[i]) : 0.0f;
    be[e] = in && bias ? to_float(bias[i]) : 0.0f;
    sc[e] = in && scale ? to_float(scale[i]) : 1.0f;
  }
  wait_for_previous();
  start_next();
  const size_t at = size_t(blockIdx.x) * a.dim;
  const T *x = static_cast<const T *>(a.x) + at;
  const T *update = a.update ? static_cast<const T *>(a.update) + at : nullptr;
  float v[kPerThread], u[kPerThread];
#pragma unroll
  for (int e = 0; e < kPerThread; ++e) {
    const int i = threadIdx.x + e * kThreads;
    v[e] = i < a.dim ? to_float(x[i]) : 0.0f;
    u[e] = i < a.dim && update ? to_float(update[i]) : 0.0f;
  }
  float total = 0.0f;
#pragma unroll
  for (int e = 0; e < kPerThread; ++e) {
    const int i = threadIdx.x + e * kThreads;
    if (i >= a.dim) continue;
    if (update) {
      const float s = scale ? to_float(from_float<T>(__fmul_rn(sc[e], u[e]))) : u[e];
      v[e] = to_float(from_float<T>(__fadd_rn(v[e], s)));
      static_cast<T *>(a.sum)[at + i] = from_float<T>(v[e]);
    }
    total += v[e];
  }
  const float mean = block_sum(total, warps) / float(a.dim);
  float squares = 0.0f;
#pragma unroll
  for (int e = 0; e < kPerThread; ++e)
    if (threadIdx.x + e * kThreads < a.dim) squares = fmaf(v[e] - mean, v[e] - mean, squares);
  const float rstd = rsqrtf(block_sum(squares, warps) / float(a.dim) + a.eps);
  T *out = static_cast<T *>(a.out) + at;
#pragma unroll
  for (int e = 0; e < kPerThread; ++e) {
    const int i = threadIdx.x + e * kThreads;
    if (i < a.dim) out[i] = from_float<T>(g[e] * (rstd * (v[e] - mean)) + be[e]);
  }
}

}  // namespace

bool layer_norm_fits(int dim) { return dim > 0 && dim <= kMaxDim; }

cudaError_t layer_norm(const LayerNorm &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.rows > 0x7fffffff || !layer_norm_fits(a.dim) || !a.weight || (a.update && !a.sum))
    return cudaErrorInvalidValue;
  if (a.floats == Floats::kBFloat16)
    return launch_chained(layer_norm_kernel<__nv_bfloat16>, dim3(unsigned(a.rows)), dim3(kThreads), 0, stream, a);
  return launch_chained(layer_norm_kernel<float>, dim3(unsigned(a.rows)), dim3(kThreads), 0, stream, a);
}

}  // namespace personaplex::cuda
