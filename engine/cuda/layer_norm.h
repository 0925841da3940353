// LayerNorm of each row in one launch, on CUDA, optionally after a scaled
// residual addition: sum = x + scale * update (the product and the sum each
// rounded to x's dtype, as libtorch's two launches round them) is written
// out and normed. Mimi's transformer layers end each sublayer this way
// (layer scale, residual, the next LayerNorm), where libtorch takes three
// launches and, on its transposed activations, a copy.
// Plain pointers and a stream: nothing of libtorch.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "cuda/floats.h"

namespace personaplex::cuda {

struct LayerNorm {
  const void *x = nullptr;       // [rows, dim], contiguous
  const void *update = nullptr;  // [rows, dim], or null: x is normed as it is
  const void *scale = nullptr;   // [dim], or null: update added as it is
  void *sum = nullptr;           // [rows, dim], with update
  const void *weight = nullptr;  // [dim]
  const void *bias = nullptr;    // [dim], or null
  void *out = nullptr;           // [rows, dim]
  int64_t rows = 0;
  int dim = 0;
  float eps = 1e-5f;
  Floats floats = Floats::kBFloat16;  // every tensor's
};

// Whether layer_norm takes rows of this width (up to 1024: the row is kept
// in registers).
bool layer_norm_fits(int dim);

// (v - mean) / sqrt(var + eps) * weight + bias per row v, in fp32. Launches
// on `stream` (capturable); returns the launch's error.
cudaError_t layer_norm(const LayerNorm &args, cudaStream_t stream);

}  // namespace personaplex::cuda
