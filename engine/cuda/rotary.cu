#include "cuda/rotary.h"

#include <cuda_bf16.h>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void rotary_kernel(Rotary r, int64_t pairs) {
  wait_for_previous();
  start_next();
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < pairs; p += int64_t(gridDim.x) * blockDim.x) {
    int64_t rest = p, x_at = 0, angle_at = 0;
    for (int d = kRotaryDims - 1; d >= 0; --d) {
      const int64_t i = rest % r.size[d];
      rest /= r.size[d];
      x_at += i * (d == kRotaryDims - 1 ? 2 * r.x_stride[d] : r.x_stride[d]);
      angle_at += i * r.angle_stride[d];
    }
    const T *x = static_cast<const T *>(r.x);
    const float re = to_float(x[x_at]), im = to_float(x[x_at + r.x_stride[kRotaryDims - 1]]);
    const float c = r.cos[angle_at], s = r.sin[angle_at];
    T *out = static_cast<T *>(r.out) + 2 * p;
    out[0] = from_float<T>(__fsub_rn(__fmul_rn(re, c), __fmul_rn(im, s)));
    out[1] = from_float<T>(__fadd_rn(__fmul_rn(re, s), __fmul_rn(im, c)));
  }
}

}  // namespace

cudaError_t rotary(const Rotary &r, cudaStream_t stream) {
  int64_t pairs = 1;
  for (int64_t s : r.size) {
    if (s <= 0) return cudaErrorInvalidValue;
    pairs *= s;
  }
  const int64_t blocks = (pairs + kThreads - 1) / kThreads;
  const unsigned grid = unsigned(blocks < 65535 ? blocks : 65535);
  if (r.floats == Floats::kBFloat16)
    return launch_chained(rotary_kernel<__nv_bfloat16>, grid, dim3(kThreads), 0, stream, r, pairs);
  return launch_chained(rotary_kernel<float>, grid, dim3(kThreads), 0, stream, r, pairs);
}

}  // namespace personaplex::cuda
