// The SiLU gate of a gated MLP in one launch, on CUDA: out = silu(a) * b
// where [a, b] are the two halves of each row of h. Rounded as libtorch's
// two launches round (silu's result to x's dtype, then the product), so
// both paths give the same values.
// Plain pointers and a stream: nothing of libtorch.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "cuda/floats.h"
#include "cuda/row_quantize.h"

namespace personaplex::cuda {

struct SiluGate {
  const void *h = nullptr;  // [rows, 2 * hidden], contiguous
  void *out = nullptr;      // [rows, hidden], contiguous
  int64_t rows = 0, hidden = 0;
  Floats floats = Floats::kBFloat16;  // activations in and out
  // When set (bf16, hidden a multiple of 8, h and out 16-byte aligned):
  // each row of out also rounded to 8 bits as row_quantize would round it
  // (q [rows, hidden], 8-byte aligned; q_scale [rows]), for the 8-bit
  // product that reads it next: one block a row then.
  void *q = nullptr;
  float *q_scale = nullptr;
  RowQuantized q_format = RowQuantized::kInt8;
};

// Launches on `stream` (capturable); returns the launch's error
// (cudaErrorNotSupported for q with sizes or a layout it does not take:
// nothing launched).
cudaError_t silu_gate(const SiluGate &args, cudaStream_t stream);

}  // namespace personaplex::cuda
