// RMSNorm of each row in one launch, on CUDA: the sum of squares, its
// reciprocal root and the scaled row, in fp32 whatever x's dtype (the
// reference's "rms_norm_f32"), where libtorch takes eight launches (the
// widening, square, mean, epsilon, root, two products, the narrowing).
// Plain pointers and a stream: nothing of libtorch.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "cuda/floats.h"
#include "cuda/row_quantize.h"

namespace personaplex::cuda {

struct RmsNorm {
  const void *x = nullptr;       // [rows, dim], contiguous
  const float *alpha = nullptr;  // [dim]
  void *out = nullptr;           // [rows, dim], x's dtype
  // When set: x + residual (rounded to x's dtype, as an addition in x's
  // dtype is) is written to `sum`, and that is what is normed.
  const void *residual = nullptr;  // [rows, dim], x's dtype
  void *sum = nullptr;             // [rows, dim], x's dtype
  int64_t rows = 0;
  int dim = 0;
  float eps = 0.0f;
  Floats floats = Floats::kBFloat16;  // activations in and out
  // When set (bf16 rows of at most 8192, the one-pass layout): each normed
  // row also rounded to 8 bits as row_quantize would round `out` (q [rows,
  // dim], 8-byte aligned; q_scale [rows]), for the 8-bit product that reads
  // it next: one launch fewer.
  void *q = nullptr;
  float *q_scale = nullptr;
  RowQuantized q_format = RowQuantized::kInt8;
};

// out = x * (alpha / sqrt(mean(x^2) + eps)), row by row. Launches on
// `stream` (capturable); returns the launch's error (cudaErrorNotSupported
// for q with a layout that does not take it: nothing launched).
cudaError_t rms_norm(const RmsNorm &args, cudaStream_t stream);

}  // namespace personaplex::cuda
