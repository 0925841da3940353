#include "cuda/silu_gate.h"

#include <cuda_bf16.h>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void silu_gate_kernel(SiluGate g) {
  wait_for_previous();
  start_next();
  const int64_t n = g.rows * g.hidden;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / g.hidden, col = i - row * g.hidden;
    const T *h = static_cast<const T *>(g.h) + row * 2 * g.hidden;
    const float a = to_float(h[col]);
    const float silu = to_float(from_float<T>(__fdiv_rn(a, __fadd_rn(1.0f, expf(-a)))));
    static_cast<T *>(g.out)[i] = from_float<T>(__fmul_rn(silu, to_float(h[g.hidden + col])));
  }
}

}  // namespace

cudaError_t silu_gate(const SiluGate &g, cudaStream_t stream) {
  if (g.rows <= 0 || g.hidden <= 0) return cudaErrorInvalidValue;
  const int64_t n = g.rows * g.hidden;
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  const unsigned grid = unsigned(blocks < 65535 ? blocks : 65535);
  if (g.floats == Floats::kBFloat16)
    return launch_chained(silu_gate_kernel<__nv_bfloat16>, dim3(grid), dim3(kThreads), 0, stream, g);
  return launch_chained(silu_gate_kernel<float>, dim3(grid), dim3(kThreads), 0, stream, g);
}

}  // namespace personaplex::cuda
