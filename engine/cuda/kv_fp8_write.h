// A step's keys and values into an fp8 KV cache, on CUDA: each row's vector
// of each head scaled by its largest magnitude (scale = max |x| / 448) and
// rounded to e4m3 bytes at the row's slot, in one launch for keys and values
// (lm/kv_format.h encodes the same bytes with libtorch's arithmetic).
// Plain pointers and a stream: nothing of libtorch.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace personaplex::cuda {

enum class KvFloats { kFloat32, kBFloat16 };

struct KvFp8Write {
  const void *k = nullptr, *v = nullptr;  // [rows, heads, head_dim], contiguous
  const int64_t *slots = nullptr;         // row r's slot at slots[r * slot_stride]
  int64_t slot_stride = 1;
  uint8_t *keys = nullptr, *values = nullptr;           // [rows, heads, allocated, head_dim]
  float *key_scales = nullptr, *value_scales = nullptr;  // [rows, heads, allocated]
  int rows = 0, heads = 0, head_dim = 0, allocated = 0;
  KvFloats floats = KvFloats::kBFloat16;
};

// Launches on `stream` (capturable); returns the launch's error.
cudaError_t kv_fp8_write(const KvFp8Write &args, cudaStream_t stream);

}  // namespace personaplex::cuda
