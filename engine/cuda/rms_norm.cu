#include "cuda/rms_norm.h"

#include <cuda_bf16.h>

#include "cuda/float_io.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kThreads = 256;

// The sum of every thread's value, on every thread.
__device__ float block_sum(float v) {
  __shared__ float warps[kThreads / 32];
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warps[warp] = v;
  __syncthreads();
  v = lane < blockDim.x / 32 ? warps[lane] : 0.0f;
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// One block a row. The products in libtorch's order: alpha times the
// reciprocal root first, then x times that.
template <typename T>
__global__ void rms_norm_kernel(RmsNorm a) {
  const T *x = static_cast<const T *>(a.x) + size_t(blockIdx.x) * a.dim;
  T *out = static_cast<T *>(a.out) + size_t(blockIdx.x) * a.dim;
  float squares = 0.0f;
  for (int i = threadIdx.x; i < a.dim; i += blockDim.x) {
    const float v = to_float(x[i]);
    squares = __fmaf_rn(v, v, squares);
  }
  const float mean = block_sum(squares) * (1.0f / float(a.dim));
  const float r = rsqrtf(__fadd_rn(mean, a.eps));
  for (int i = threadIdx.x; i < a.dim; i += blockDim.x)
    out[i] = from_float<T>(__fmul_rn(to_float(x[i]), __fmul_rn(a.alpha[i], r)));
}

}  // namespace

cudaError_t rms_norm(const RmsNorm &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.dim <= 0 || a.rows > 0x7fffffff) return cudaErrorInvalidValue;
  const int threads = a.dim >= kThreads ? kThreads : ((a.dim + 31) / 32) * 32;
  if (a.floats == NormFloats::kBFloat16)
    rms_norm_kernel<__nv_bfloat16><<<unsigned(a.rows), threads, 0, stream>>>(a);
  else
    rms_norm_kernel<float><<<unsigned(a.rows), threads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace personaplex::cuda
