#include "cuda/product_sum.h"

#include <cuda_bf16.h>

#include "cuda/chained_launch.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxCount = 16;

// Four neighbouring values of the parts from element `at`, widened.
__device__ __forceinline__ void load_quad(const int32_t *parts, int64_t at, int32_t (&out)[4]) {
  const int4 p = reinterpret_cast<const int4 *>(parts + at)[0];
  out[0] = p.x, out[1] = p.y, out[2] = p.z, out[3] = p.w;
}

__device__ __forceinline__ void load_quad(const float *parts, int64_t at, float (&out)[4]) {
  const float4 p = reinterpret_cast<const float4 *>(parts + at)[0];
  out[0] = p.x, out[1] = p.y, out[2] = p.z, out[3] = p.w;
}

// Four outputs a thread: the parts' sums (int32 in int32, fp32 in fp32),
// then one scaling and one rounding each.
template <typename Part, typename Sum>
__global__ void product_sum_kernel(ProductSum a) {
  wait_for_previous();
  start_next();
  const Part *parts = static_cast<const Part *>(a.parts);
  const int64_t size = a.rows * a.n, quads = size / 4;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < quads; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t first = i * 4, row = first / a.n, column = first - row * a.n;
    Sum sum[4] = {};
    for (int64_t p = 0; p < a.count; ++p) {
      Sum v[4];
      load_quad(parts, p * size + first, v);
#pragma unroll
      for (int j = 0; j < 4; ++j) sum[j] += v[j];
    }
    float r = a.row_scale[row];
    if (a.carried_row_scale != nullptr) r /= *a.carried_row_scale;
    uint2 out;
    __nv_bfloat16 *y = reinterpret_cast<__nv_bfloat16 *>(&out);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float c = a.column_scale[column + j];
      if (a.carried_column_scale != nullptr) c /= *a.carried_column_scale;
      y[j] = __float2bfloat16_rn(float(sum[j]) * r * c);
    }
    *reinterpret_cast<uint2 *>(static_cast<__nv_bfloat16 *>(a.y) + first) = out;
  }
}

}  // namespace

cudaError_t product_sum(const ProductSum &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.n <= 0 || a.n % 4 != 0 || a.count < 1 || a.count > kMaxCount || a.row_scale == nullptr ||
      a.column_scale == nullptr)
    return cudaErrorInvalidValue;
  const int64_t blocks = (a.rows * a.n / 4 + kThreads - 1) / kThreads;
  const unsigned grid = unsigned(blocks < 65535 ? blocks : 65535);
  if (a.type == ProductParts::kInt32)
    return launch_chained(product_sum_kernel<int32_t, int32_t>, dim3(grid), dim3(kThreads), 0, stream, a);
  return launch_chained(product_sum_kernel<float, float>, dim3(grid), dim3(kThreads), 0, stream, a);
}

}  // namespace personaplex::cuda
