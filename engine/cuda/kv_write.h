// A step's keys and values into a KV cache kept in their own dtype, on CUDA:
// each row's vector of each head copied to the row's slot, keys and values
// in one launch (libtorch scatters each, and first copies a strided value).
// Plain pointers and a stream: nothing of libtorch.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace personaplex::cuda {

struct KvWrite {
  // Row r, head h of k starts at k + r * k_row_stride + h * k_head_stride
  // (elements); its head_dim elements are contiguous. The same for v.
  const void *k = nullptr, *v = nullptr;
  int64_t k_row_stride = 0, k_head_stride = 0, v_row_stride = 0, v_head_stride = 0;
  const int64_t *slots = nullptr;  // row r's slot at slots[r * slot_stride]
  int64_t slot_stride = 1;
  void *keys = nullptr, *values = nullptr;  // [rows, heads, allocated, head_dim], k's dtype
  int rows = 0, heads = 0, head_dim = 0, allocated = 0;
  int element_bytes = 2;  // 2 (bf16, fp16) or 4 (fp32)
};

// Launches on `stream` (capturable); returns the launch's error.
cudaError_t kv_write(const KvWrite &args, cudaStream_t stream);

}  // namespace personaplex::cuda
