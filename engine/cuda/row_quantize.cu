#include "cuda/row_quantize.h"

#include <cuda_bf16.h>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"
#include "cuda/row_quantize.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kChunk = 8;  // bf16 values a 16-byte load brings

// One block a row: its largest magnitude, then its values over the scale
// (the row is read twice; the second read comes from cache).
__global__ void row_quantize_kernel(RowQuantize a) {
  wait_for_previous();
  start_next();
  const int64_t row = blockIdx.x;
  const __nv_bfloat16 *x = static_cast<const __nv_bfloat16 *>(a.x) + row * a.k;
  float amax = 0.0f;
  for (int64_t c = threadIdx.x * int64_t(kChunk); c < a.k; c += kThreads * int64_t(kChunk)) {
    float v[kChunk];
    load16(x + c, v);
#pragma unroll
    for (int i = 0; i < kChunk; ++i) amax = fmaxf(amax, fabsf(v[i]));
  }
  const float scale = row_scale(block_largest(amax), a.format);
  if (threadIdx.x == 0) a.scale[row] = scale;
  uint8_t *q = static_cast<uint8_t *>(a.q) + row * a.k;
  for (int64_t c = threadIdx.x * int64_t(kChunk); c < a.k; c += kThreads * int64_t(kChunk)) {
    float v[kChunk];
    load16(x + c, v);
    store_row_bytes(q + c, v, scale, a.format);
  }
}

}  // namespace

cudaError_t row_quantize(const RowQuantize &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.k <= 0 || a.k % kChunk != 0 || a.rows > 0x7fffffff) return cudaErrorInvalidValue;
  return launch_chained(row_quantize_kernel, dim3(unsigned(a.rows)), dim3(kThreads), 0, stream, a);
}

}  // namespace personaplex::cuda
