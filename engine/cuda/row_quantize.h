// The first half of an 8-bit product on the tensor cores, before the GPU
// library's matmul (int8 x int8 -> int32, or fp8 x fp8): a batch's
// activations quantized per row in one launch (each row's scale is its
// largest magnitude over the format's largest value). The other half is
// cuda/product_sum.h. Plain pointers and a stream: nothing of libtorch.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace personaplex::cuda {

enum class RowQuantized { kInt8, kFp8E4M3 };

struct RowQuantize {
  const void *x = nullptr;  // bf16 [rows, k], contiguous, 16-byte aligned
  void *q = nullptr;        // int8 or fp8 e4m3 [rows, k], 8-byte aligned
  float *scale = nullptr;   // fp32 [rows]: x ~ q * scale
  int64_t rows = 0, k = 0;  // k a multiple of 8
  RowQuantized format = RowQuantized::kInt8;
};

// Launches on `stream` (capturable); returns the launch's error
// (cudaErrorInvalidValue for sizes it does not take).
cudaError_t row_quantize(const RowQuantize &args, cudaStream_t stream);

}  // namespace personaplex::cuda
