#include "cuda/rms_norm.h"

#include <cuda_bf16.h>

#include <cstdint>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"
#include "cuda/row_quantize.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kMaxThreads = 1024;
constexpr int kLoopThreads = 256;

// The sum of every thread's value, on every thread.
__device__ float block_sum(float v) {
  __shared__ float warps[kMaxThreads / 32];
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warps[warp] = v;
  __syncthreads();
  v = lane < (blockDim.x + 31) / 32 ? warps[lane] : 0.0f;
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// The row as stored (v rounded to T) over its scale, the scale from the
// block's largest magnitude; every thread of the block calls it.
template <typename T>
__device__ __forceinline__ void quantize_stored(const RmsNorm &a, float (&v)[8], size_t at) {
  float amax = 0.0f;
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    v[e] = to_float(from_float<T>(v[e]));
    amax = fmaxf(amax, fabsf(v[e]));
  }
  const float scale = row_scale(block_largest(amax), a.q_format);
  if (threadIdx.x == 0) a.q_scale[blockIdx.x] = scale;
  store_row_bytes(static_cast<uint8_t *>(a.q) + at, v, scale, a.q_format);
}

// x, or x + residual rounded to T (as an addition in T rounds it).
template <typename T>
__device__ __forceinline__ float summed(const T *x, const T *residual, size_t i) {
  return residual ? to_float(from_float<T>(__fadd_rn(to_float(x[i]), to_float(residual[i])))) : to_float(x[i]);
}

// One block a row, any width: each thread strides over the row twice. The
// products in libtorch's order: alpha times the reciprocal root first, then
// x times that.
template <typename T>
__global__ void rms_norm_loop_kernel(RmsNorm a) {
  wait_for_previous();
  start_next();
  const size_t row = size_t(blockIdx.x) * a.dim;
  const T *x = static_cast<const T *>(a.x) + row;
  const T *residual = a.residual ? static_cast<const T *>(a.residual) + row : nullptr;
  float squares = 0.0f;
  for (int i = threadIdx.x; i < a.dim; i += blockDim.x) {
    const float v = summed(x, residual, i);
    squares = __fmaf_rn(v, v, squares);
    if (residual) static_cast<T *>(a.sum)[row + i] = from_float<T>(v);
  }
  const float r = rsqrtf(__fadd_rn(block_sum(squares) * (1.0f / float(a.dim)), a.eps));
  T *out = static_cast<T *>(a.out) + row;
  for (int i = threadIdx.x; i < a.dim; i += blockDim.x)
    out[i] = from_float<T>(__fmul_rn(summed(x, residual, i), __fmul_rn(a.alpha[i], r)));
}

// One block a row of width kPerLoad<T> * blockDim: each thread loads its 16
// bytes once and keeps them in registers (at batch 1 the row is one block,
// so its loads must all be in flight at once). With q (bf16: 8 values a
// thread), the row as stored is also rounded to 8 bits over its largest
// magnitude.
template <typename T>
__global__ void rms_norm_vector_kernel(RmsNorm a) {
  wait_for_previous();
  start_next();
  constexpr int N = kPerLoad<T>;
  const size_t at = size_t(blockIdx.x) * a.dim + size_t(threadIdx.x) * N;
  float v[N];
  load16(static_cast<const T *>(a.x) + at, v);
  if (a.residual) {
    float r[N];
    load16(static_cast<const T *>(a.residual) + at, r);
#pragma unroll
    for (int e = 0; e < N; ++e) v[e] = to_float(from_float<T>(__fadd_rn(v[e], r[e])));
    store16(static_cast<T *>(a.sum) + at, v);
  }
  float squares = 0.0f;
#pragma unroll
  for (int e = 0; e < N; ++e) squares = __fmaf_rn(v[e], v[e], squares);
  const float r = rsqrtf(__fadd_rn(block_sum(squares) * (1.0f / float(a.dim)), a.eps));
  const float4 *alpha = reinterpret_cast<const float4 *>(a.alpha + size_t(threadIdx.x) * N);
#pragma unroll
  for (int e = 0; e < N; e += 4) {
    const float4 s = alpha[e / 4];
    v[e] = __fmul_rn(v[e], __fmul_rn(s.x, r));
    v[e + 1] = __fmul_rn(v[e + 1], __fmul_rn(s.y, r));
    v[e + 2] = __fmul_rn(v[e + 2], __fmul_rn(s.z, r));
    v[e + 3] = __fmul_rn(v[e + 3], __fmul_rn(s.w, r));
  }
  store16(static_cast<T *>(a.out) + at, v);
  if constexpr (N == 8) {
    if (a.q) quantize_stored<T>(a, v, at);
  }
}

bool aligned16(const void *p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename T>
cudaError_t launch(const RmsNorm &a, cudaStream_t stream) {
  constexpr int N = kPerLoad<T>;
  // Whole warps only: the sums shuffle across all 32 lanes.
  const bool vector = a.dim % (32 * N) == 0 && a.dim / N <= kMaxThreads && aligned16(a.x) && aligned16(a.out) &&
                      aligned16(a.alpha) && (!a.residual || (aligned16(a.residual) && aligned16(a.sum)));
  if (a.q && !(vector && N == 8 && reinterpret_cast<uintptr_t>(a.q) % 8 == 0 && a.q_scale))
    return cudaErrorNotSupported;
  if (vector)
    return launch_chained(rms_norm_vector_kernel<T>, dim3(unsigned(a.rows)), dim3(a.dim / N), 0, stream, a);
  const int threads = a.dim >= kLoopThreads ? kLoopThreads : ((a.dim + 31) / 32) * 32;
  return launch_chained(rms_norm_loop_kernel<T>, dim3(unsigned(a.rows)), dim3(threads), 0, stream, a);
}

}  // namespace

cudaError_t rms_norm(const RmsNorm &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.dim <= 0 || a.rows > 0x7fffffff || (a.residual && !a.sum)) return cudaErrorInvalidValue;
  return a.floats == Floats::kBFloat16 ? launch<__nv_bfloat16>(a, stream) : launch<float>(a, stream);
}

}  // namespace personaplex::cuda
