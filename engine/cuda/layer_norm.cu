#include "cuda/layer_norm.h"

#include <cuda_bf16.h>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kMaxDim = 8192;  // 32 KiB of shared memory a row

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

// One block a row: the row (summed where asked) into shared memory, its
// mean, then its variance about the mean, then the normed row.
template <typename T>
__global__ void __launch_bounds__(kThreads) layer_norm_kernel(LayerNorm a) {
  wait_for_previous();
  start_next();
  extern __shared__ float row_s[];
  __shared__ float warps[kThreads / 32];
  const size_t at = size_t(blockIdx.x) * a.dim;
  const T *x = static_cast<const T *>(a.x) + at;
  const T *update = a.update ? static_cast<const T *>(a.update) + at : nullptr;
  const T *scale = static_cast<const T *>(a.scale);
  float total = 0.0f;
  for (int i = threadIdx.x; i < a.dim; i += kThreads) {
    float v = to_float(x[i]);
    if (update) {
      float u = to_float(update[i]);
      if (scale) u = to_float(from_float<T>(__fmul_rn(to_float(scale[i]), u)));
      v = to_float(from_float<T>(__fadd_rn(v, u)));
      static_cast<T *>(a.sum)[at + i] = from_float<T>(v);
    }
    row_s[i] = v;
    total += v;
  }
  const float mean = block_sum(total, warps) / float(a.dim);
  float squares = 0.0f;
  for (int i = threadIdx.x; i < a.dim; i += kThreads) {
    const float c = row_s[i] - mean;
    squares = fmaf(c, c, squares);
  }
  const float rstd = rsqrtf(block_sum(squares, warps) / float(a.dim) + a.eps);
  const T *weight = static_cast<const T *>(a.weight), *bias = static_cast<const T *>(a.bias);
  T *out = static_cast<T *>(a.out) + at;
  for (int i = threadIdx.x; i < a.dim; i += kThreads) {
    float y = to_float(weight[i]) * (rstd * (row_s[i] - mean));
    if (bias) y += to_float(bias[i]);
    out[i] = from_float<T>(y);
  }
}

}  // namespace

bool layer_norm_fits(int dim) { return dim > 0 && dim <= kMaxDim; }

cudaError_t layer_norm(const LayerNorm &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.rows > 0x7fffffff || !layer_norm_fits(a.dim) || !a.weight || (a.update && !a.sum))
    return cudaErrorInvalidValue;
  const size_t bytes = size_t(a.dim) * sizeof(float);
  if (a.floats == Floats::kBFloat16)
    return launch_chained(layer_norm_kernel<__nv_bfloat16>, dim3(unsigned(a.rows)), dim3(kThreads), bytes, stream, a);
  return launch_chained(layer_norm_kernel<float>, dim3(unsigned(a.rows)), dim3(kThreads), bytes, stream, a);
}

}  // namespace personaplex::cuda
