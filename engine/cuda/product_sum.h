// The last half of an 8-bit product on the tensor cores: the GPU library's
// matmul output (int32 for int8 x int8, bf16 for scaled fp8), in one part
// or in parts over slices of k that ran side by side, summed and scaled
// back to bf16 by the rows' and the weight columns' scales. Plain pointers
// and a stream: nothing of libtorch.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace personaplex::cuda {

enum class ProductParts { kInt32, kBFloat16 };

struct ProductSum {
  const void *parts = nullptr;          // [count, rows, n], contiguous, 16-byte aligned
  ProductParts type = ProductParts::kInt32;
  int64_t count = 1;                    // parts summed
  const float *row_scale = nullptr;     // [rows], or null with column_scale: no scaling
  const float *column_scale = nullptr;  // [n]
  void *y = nullptr;                    // bf16 [rows, n], 8-byte aligned
  int64_t rows = 0, n = 0;              // n a multiple of 4
};

// y = (sum of the parts) * row_scale[row] * column_scale[column], rounded to
// bf16 once; int32 parts summed exactly (as the whole product would be).
// Launches on `stream` (capturable); returns the launch's error
// (cudaErrorInvalidValue for sizes it does not take).
cudaError_t product_sum(const ProductSum &args, cudaStream_t stream);

}  // namespace personaplex::cuda
