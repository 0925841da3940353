// The per-row 8-bit rounding of row_quantize.h as device functions, for
// the kernels that write a row and its 8-bit copy in one launch (RMSNorm,
// the SiLU gate): the same scale and bytes as row_quantize of the bf16 row
// they wrote, so the 8-bit product that reads them gives the same result
// either way.
#pragma once

#include <cuda_fp8.h>

#include <cstdint>

#include "cuda/row_quantize.h"

namespace personaplex::cuda {

// The largest of every thread's `v` (magnitudes: 0 is neutral), on every
// thread; blockDim a multiple of 32, at most 1024.
__device__ __forceinline__ float block_largest(float v) {
  __shared__ float warps[32];
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warps[warp] = v;
  __syncthreads();
  v = lane < int(blockDim.x / 32) ? warps[lane] : 0.0f;
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// x ~ q * scale: the row's largest magnitude over the format's largest
// value (an all-zero row still gets a positive scale).
__device__ __forceinline__ float row_scale(float largest_magnitude, RowQuantized format) {
  const float largest = format == RowQuantized::kInt8 ? 127.0f : 448.0f;
  return __fdiv_rn(fmaxf(largest_magnitude, 1e-12f), largest);
}

// v / scale rounded to the format: int8 to nearest, clamped to +-127;
// e4m3 saturated to its largest finite value.
__device__ __forceinline__ uint8_t row_byte(float v, float scale, RowQuantized format) {
  const float s = __fdiv_rn(v, scale);
  if (format == RowQuantized::kInt8) {
    const int i = __float2int_rn(s);
    return uint8_t(int8_t(i < -127 ? -127 : (i > 127 ? 127 : i)));
  }
  return uint8_t(__nv_cvt_float_to_fp8(s, __NV_SATFINITE, __NV_E4M3));
}

// Eight values' bytes in one 8-byte store; q 8-byte aligned.
__device__ __forceinline__ void store_row_bytes(uint8_t *q, const float (&v)[8], float scale, RowQuantized format) {
  uint2 out;
  uint8_t *bytes = reinterpret_cast<uint8_t *>(&out);
#pragma unroll
  for (int i = 0; i < 8; ++i) bytes[i] = row_byte(v[i], scale, format);
  *reinterpret_cast<uint2 *>(q) = out;
}

}  // namespace personaplex::cuda
