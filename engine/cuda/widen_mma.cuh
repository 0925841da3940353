// What the weight-only kernels share: 8-bit weights widened to bf16 pairs in
// registers, and the m16n8k16 bf16 tensor-core product they feed.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "cuda/weight_only_gemv.h"

namespace personaplex::cuda {

// Byte i of `word`, an int8, as an exact float: the bits of 2^23 + (byte +
// 128) put together by a byte permute, less 2^23 + 128. Two full-rate
// instructions where the integer-to-float conversion runs at a quarter of
// the rate and bounded the 8-bit kernels (one conversion per weight byte).
__device__ __forceinline__ float int8_float(uint32_t word, int i) {
  return __uint_as_float(__byte_perm(word ^ 0x80808080u, 0x4B000000u, 0x7540u | unsigned(i))) - 8388736.0f;
}

// Two 8-bit weights (the low and the next byte of `word` from `byte`) as a
// bf16 pair, the first in the low half: exact, for int8 and e4m3 alike.
template <GemvWeights W>
__device__ __forceinline__ uint32_t bf16_pair(uint32_t word, int byte) {
  float lo, hi;
  if constexpr (W == GemvWeights::kInt8) {
    // Integers of 8 bits: their floats' low 16 bits are zero, so the upper
    // halves are their exact bf16 values.
    lo = int8_float(word, byte);
    hi = int8_float(word, byte + 1);
    return __byte_perm(__float_as_uint(lo), __float_as_uint(hi), 0x7632u);
  } else {
    const float2 f = __half22float2(
        __half2(__nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t((word >> (8 * byte)) & 0xffff), __NV_E4M3)));
    lo = f.x;
    hi = f.y;
  }
  const __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t *>(&pair);
}

// The A operands (a0..a3) of the four k16 products of a 64-wide k tile, from
// one lane's 16 bytes of column g (`lo`) and of column g + 8 (`hi`): product
// s takes bytes 4s..4s+3 (the kernels' k order, shared with x's operand).
template <GemvWeights W>
__device__ __forceinline__ void weight_fragments(const uint4 &lo, const uint4 &hi, uint32_t (&a)[4][4]) {
  const uint32_t l[4] = {lo.x, lo.y, lo.z, lo.w}, h[4] = {hi.x, hi.y, hi.z, hi.w};
#pragma unroll
  for (int s = 0; s < 4; ++s) {
    a[s][0] = bf16_pair<W>(l[s], 0);
    a[s][1] = bf16_pair<W>(h[s], 0);
    a[s][2] = bf16_pair<W>(l[s], 2);
    a[s][3] = bf16_pair<W>(h[s], 2);
  }
}

// acc (16 x 8 fp32) += A (16 x 16 bf16, row-major fragments a0..a3) ·
// B (16 x 8 bf16, column-major fragments b0, b1).
__device__ __forceinline__ void mma_bf16(float *acc, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

}  // namespace personaplex::cuda
