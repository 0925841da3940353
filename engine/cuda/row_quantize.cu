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

// Four outputs a thread: one 16-byte load of the product, one 8-byte store.
__global__ void int_product_scale_kernel(IntProductScale a) {
  wait_for_previous();
  start_next();
  const int64_t quads = a.rows * a.n / 4;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < quads; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t first = i * 4, row = first / a.n, column = first - row * a.n;
    const int4 p = reinterpret_cast<const int4 *>(a.product)[i];
    const int32_t in[4] = {p.x, p.y, p.z, p.w};
    const float r = a.row_scale[row];
    uint2 out;
    __nv_bfloat16 *y = reinterpret_cast<__nv_bfloat16 *>(&out);
#pragma unroll
    for (int j = 0; j < 4; ++j) y[j] = __float2bfloat16_rn(float(in[j]) * r * a.column_scale[column + j]);
    *reinterpret_cast<uint2 *>(static_cast<__nv_bfloat16 *>(a.y) + first) = out;
  }
}

}  // namespace

cudaError_t row_quantize(const RowQuantize &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.k <= 0 || a.k % kChunk != 0 || a.rows > 0x7fffffff) return cudaErrorInvalidValue;
  return launch_chained(row_quantize_kernel, dim3(unsigned(a.rows)), dim3(kThreads), 0, stream, a);
}

cudaError_t int_product_scale(const IntProductScale &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.n <= 0 || a.n % 4 != 0) return cudaErrorInvalidValue;
  const int64_t blocks = (a.rows * a.n / 4 + kThreads - 1) / kThreads;
  const unsigned grid = unsigned(blocks < 65535 ? blocks : 65535);
  return launch_chained(int_product_scale_kernel, dim3(grid), dim3(kThreads), 0, stream, a);
}

}  // namespace personaplex::cuda
