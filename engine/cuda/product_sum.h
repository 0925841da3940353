// The last half of an 8-bit product on the tensor cores: the GPU library's
// matmul output (int32 for int8 x int8, fp32 for fp8 x fp8), in one part
// or in parts over slices of k that ran side by side, summed and scaled
// back to bf16 by the rows' and the weight columns' scales. Plain pointers
// and a stream: nothing of libtorch.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace personaplex::cuda {

enum class ProductParts { kInt32, kFloat32 };

struct ProductSum {
  const void *parts = nullptr;          // [count, rows, n], contiguous, 16-byte aligned
  ProductParts type = ProductParts::kInt32;
  int64_t count = 1;                    // parts summed
  const float *row_scale = nullptr;     // [rows]
  const float *column_scale = nullptr;  // [n]
  // fp32 parts only: the one scale each the parts already carry (the
  // library's fp8 matmul takes one per operand; row 0's and column 0's),
  // divided out. Null: none.
  const float *carried_row_scale = nullptr, *carried_column_scale = nullptr;
  void *y = nullptr;                    // bf16 [rows, n], 8-byte aligned
  int64_t rows = 0, n = 0;              // n a multiple of 4
};

// y = (sum of the parts) * row_scale[row] * column_scale[column] (over the
// carried scales), rounded to bf16 once; int32 parts summed exactly (as the
// whole product would be), fp32 parts in fp32.
// Launches on `stream` (capturable); returns the launch's error
// (cudaErrorInvalidValue for sizes it does not take).
cudaError_t product_sum(const ProductSum &args, cudaStream_t stream);

}  // namespace personaplex::cuda
