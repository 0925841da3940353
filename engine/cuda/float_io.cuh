// Loads and stores of the kernels' two float types, widened to and rounded
// from fp32 (round to nearest even, as libtorch's conversions).
#pragma once

#include <cuda_bf16.h>

namespace personaplex::cuda {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// 16 bytes of T (8 bf16 or 4 fp32) as floats: one load or store
// instruction. The address must be 16-byte aligned.
template <typename T>
constexpr int kPerLoad = 16 / int(sizeof(T));

template <typename T>
__device__ __forceinline__ void load16(const T *p, float (&out)[kPerLoad<T>]) {
  const uint4 raw = *reinterpret_cast<const uint4 *>(p);
  const T *e = reinterpret_cast<const T *>(&raw);
#pragma unroll
  for (int i = 0; i < kPerLoad<T>; ++i) out[i] = to_float(e[i]);
}

template <typename T>
__device__ __forceinline__ void store16(T *p, const float (&in)[kPerLoad<T>]) {
  uint4 raw;
  T *e = reinterpret_cast<T *>(&raw);
#pragma unroll
  for (int i = 0; i < kPerLoad<T>; ++i) e[i] = from_float<T>(in[i]);
  *reinterpret_cast<uint4 *>(p) = raw;
}

}  // namespace personaplex::cuda
