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

}  // namespace personaplex::cuda
