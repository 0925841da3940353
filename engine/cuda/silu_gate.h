// The SiLU gate of a gated MLP in one launch, on CUDA: out = silu(a) * b
// where [a, b] are the two halves of each row of h. Rounded as libtorch's
// two launches round (silu's result to x's dtype, then the product), so
// both paths give the same values.
// Plain pointers and a stream: nothing of libtorch.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "cuda/floats.h"

namespace personaplex::cuda {

struct SiluGate {
  const void *h = nullptr;  // [rows, 2 * hidden], contiguous
  void *out = nullptr;      // [rows, hidden], contiguous
  int64_t rows = 0, hidden = 0;
  Floats floats = Floats::kBFloat16;  // activations in and out
};

// Launches on `stream` (capturable); returns the launch's error.
cudaError_t silu_gate(const SiluGate &args, cudaStream_t stream);

}  // namespace personaplex::cuda
