#include "cuda/kv_write.h"

#include <cstdint>

#include "cuda/chained_launch.cuh"

namespace personaplex::cuda {
namespace {

// One block per (head, row, keys or values); elements copied as bits.
template <typename E>
__global__ void kv_write_kernel(KvWrite a) {
  wait_for_previous();
  start_next();
  const int head = blockIdx.x, row = blockIdx.y;
  const bool is_value = blockIdx.z == 1;
  const E *x = static_cast<const E *>(is_value ? a.v : a.k) + row * (is_value ? a.v_row_stride : a.k_row_stride) +
               head * (is_value ? a.v_head_stride : a.k_head_stride);
  const size_t slot = (size_t(row) * a.heads + head) * a.allocated + size_t(a.slots[size_t(row) * a.slot_stride]);
  E *out = static_cast<E *>(is_value ? a.values : a.keys) + slot * a.head_dim;
  for (int i = threadIdx.x; i < a.head_dim; i += blockDim.x) out[i] = x[i];
}

}  // namespace

cudaError_t kv_write(const KvWrite &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.heads <= 0 || a.head_dim <= 0 || a.rows > 65535) return cudaErrorInvalidValue;
  const dim3 grid(a.heads, a.rows, 2);
  const int threads = a.head_dim >= 128 ? 128 : ((a.head_dim + 31) / 32) * 32;
  if (a.element_bytes == 2)
    return launch_chained(kv_write_kernel<uint16_t>, grid, dim3(threads), 0, stream, a);
  if (a.element_bytes == 4) return launch_chained(kv_write_kernel<uint32_t>, grid, dim3(threads), 0, stream, a);
  return cudaErrorInvalidValue;
}

}  // namespace personaplex::cuda
