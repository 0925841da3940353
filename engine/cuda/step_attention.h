// One step's attention over a short per-row cache, on CUDA: the step's key
// and value written at their slot, then the query's softmax attention over
// a window of slots ending there, in one launch (the depth transformer's
// 16-slot cache, reset every step, where libtorch takes two copies and
// several attention launches for a few keys).
// Plain pointers and a stream: nothing of libtorch.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "cuda/floats.h"

namespace personaplex::cuda {

struct StepAttention {
  const void *qkv = nullptr;  // [rows, 3, heads, head_dim], contiguous: q, k, v
  void *keys = nullptr;       // [rows, heads, slots, head_dim], contiguous
  void *values = nullptr;     // the same
  void *out = nullptr;        // [rows, heads, head_dim]
  int rows = 0, heads = 0, head_dim = 0, slots = 0;
  int slot = 0;   // where this step's key and value go
  int first = 0;  // the window: slots first..slot
  Floats floats = Floats::kBFloat16;  // activations in and out
};

// Whether step_attention takes these sizes (the window's keys and values
// fit in 48 KiB of shared memory as fp32).
bool step_attention_fits(int head_dim, int slots, int slot, int first);

// Launches on `stream` (capturable); returns the launch's error.
cudaError_t step_attention(const StepAttention &args, cudaStream_t stream);

}  // namespace personaplex::cuda
