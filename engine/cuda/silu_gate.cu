#include "cuda/silu_gate.h"

#include <cuda_bf16.h>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"
#include "cuda/row_quantize.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kRowThreads = 512;

// silu(a) * b rounded as libtorch's two launches round it.
template <typename T>
__device__ __forceinline__ float gated(float a, float b) {
  const float silu = to_float(from_float<T>(__fdiv_rn(a, __fadd_rn(1.0f, expf(-a)))));
  return to_float(from_float<T>(__fmul_rn(silu, b)));
}

template <typename T>
__global__ void silu_gate_kernel(SiluGate g) {
  wait_for_previous();
  start_next();
  const int64_t n = g.rows * g.hidden;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / g.hidden, col = i - row * g.hidden;
    const T *h = static_cast<const T *>(g.h) + row * 2 * g.hidden;
    static_cast<T *>(g.out)[i] = from_float<T>(gated<T>(to_float(h[col]), to_float(h[g.hidden + col])));
  }
}

// One block a row of bf16, eight values a thread at a time: the gated row
// stored and its largest magnitude, then the stored row (each thread's own
// values, from cache) over its scale in 8 bits.
__global__ void silu_gate_rows_kernel(SiluGate g) {
  wait_for_previous();
  start_next();
  const int64_t row = blockIdx.x;
  const __nv_bfloat16 *h = static_cast<const __nv_bfloat16 *>(g.h) + row * 2 * g.hidden;
  __nv_bfloat16 *out = static_cast<__nv_bfloat16 *>(g.out) + row * g.hidden;
  float amax = 0.0f;
  for (int64_t c = threadIdx.x * 8; c < g.hidden; c += kRowThreads * 8) {
    float a[8], b[8];
    load16(h + c, a);
    load16(h + g.hidden + c, b);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      a[e] = gated<__nv_bfloat16>(a[e], b[e]);
      amax = fmaxf(amax, fabsf(a[e]));
    }
    store16(out + c, a);
  }
  const float scale = row_scale(block_largest(amax), g.q_format);
  if (threadIdx.x == 0) g.q_scale[row] = scale;
  uint8_t *q = static_cast<uint8_t *>(g.q) + row * g.hidden;
  for (int64_t c = threadIdx.x * 8; c < g.hidden; c += kRowThreads * 8) {
    float v[8];
    load16(out + c, v);
    store_row_bytes(q + c, v, scale, g.q_format);
  }
}

bool aligned(const void *p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

cudaError_t silu_gate(const SiluGate &g, cudaStream_t stream) {
  if (g.rows <= 0 || g.hidden <= 0) return cudaErrorInvalidValue;
  if (g.q) {
    if (g.floats != Floats::kBFloat16 || g.hidden % 8 != 0 || !g.q_scale || g.rows > 0x7fffffff ||
        !aligned(g.h, 16) || !aligned(g.out, 16) || !aligned(g.q, 8))
      return cudaErrorNotSupported;
    return launch_chained(silu_gate_rows_kernel, dim3(unsigned(g.rows)), dim3(kRowThreads), 0, stream, g);
  }
  const int64_t n = g.rows * g.hidden;
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  const unsigned grid = unsigned(blocks < 65535 ? blocks : 65535);
  if (g.floats == Floats::kBFloat16)
    return launch_chained(silu_gate_kernel<__nv_bfloat16>, dim3(grid), dim3(kThreads), 0, stream, g);
  return launch_chained(silu_gate_kernel<float>, dim3(grid), dim3(kThreads), 0, stream, g);
}

}  // namespace personaplex::cuda
