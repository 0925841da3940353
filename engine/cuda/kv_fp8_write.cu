#include "cuda/kv_fp8_write.h"

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "cuda/chained_launch.cuh"

namespace personaplex::cuda {
namespace {

constexpr float kE4m3Max = 448.0f;

__device__ __forceinline__ float load(const float *p, size_t i) { return p[i]; }
__device__ __forceinline__ float load(const __nv_bfloat16 *p, size_t i) { return __bfloat162float(p[i]); }

// One warp per (row, head, keys or values): the vector's largest magnitude
// by a warp reduction, then each lane rounds its values. Division by the
// scale, as the libtorch encoder does, so both give the same bytes.
template <typename T>
__global__ void write_kernel(KvFp8Write a) {
  wait_for_previous();
  start_next();
  const int head = blockIdx.x, row = blockIdx.y, lane = threadIdx.x;
  const bool is_value = blockIdx.z == 1;
  const T *x = static_cast<const T *>(is_value ? a.v : a.k) + (size_t(row) * a.heads + head) * a.head_dim;
  float amax = 0.0f;
  for (int i = lane; i < a.head_dim; i += 32) amax = fmaxf(amax, fabsf(load(x, i)));
  for (int off = 16; off > 0; off /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
  const float scale = amax / kE4m3Max, divisor = scale > 0.0f ? scale : 1.0f;
  const size_t slot = size_t(row) * a.heads * a.allocated + size_t(head) * a.allocated +
                      size_t(a.slots[size_t(row) * a.slot_stride]);
  uint8_t *out = (is_value ? a.values : a.keys) + slot * a.head_dim;
  for (int i = lane; i < a.head_dim; i += 32)
    out[i] = __nv_cvt_float_to_fp8(load(x, i) / divisor, __NV_SATFINITE, __NV_E4M3);
  if (lane == 0) (is_value ? a.value_scales : a.key_scales)[slot] = scale;
}

}  // namespace

cudaError_t kv_fp8_write(const KvFp8Write &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.heads <= 0 || a.head_dim <= 0) return cudaErrorInvalidValue;
  const dim3 grid(a.heads, a.rows, 2);
  if (a.floats == KvFloats::kBFloat16)
    return launch_chained(write_kernel<__nv_bfloat16>, grid, dim3(32), 0, stream, a);
  return launch_chained(write_kernel<float>, grid, dim3(32), 0, stream, a);
}

}  // namespace personaplex::cuda
