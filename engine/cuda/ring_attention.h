// A streaming transformer's attention step over its ring KV cache, on CUDA:
// the step's T queries and keys rotated (RoPE, interleaved pairs), its keys
// and values written at their slots, then each query's softmax attention
// over the slots its window sees, in one launch. libtorch takes about ten
// (the angles, the rotation, two scatters, the slot labels and the mask,
// the attention and its layout), which at batch 1 cost more than the
// arithmetic (Mimi's transformers: 8 layers, T = 2 a frame, 250 slots).
//
// The window is the reference's ring labelling (nn/kv_cache.h): once T keys
// are written, slot s holds the latest step p < end with p % slots == s,
// except the slot about to be overwritten next, which no query sees; query
// t at step p_t sees the labelled slots with 0 <= p <= p_t.
// Plain pointers and a stream: nothing of libtorch.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "cuda/floats.h"

namespace personaplex::cuda {

struct RingAttention {
  const void *qkv = nullptr;          // [rows, T, 3, heads, head_dim], contiguous: q, k, v
  void *keys = nullptr;               // [rows, heads, slots, head_dim], contiguous
  void *values = nullptr;             // the same
  const int64_t *steps = nullptr;     // the step of each row's first query: [rows], or [1] for all
  const float *frequencies = nullptr; // [head_dim / 2] rotation frequencies; null: no rotation
  void *out = nullptr;                // [rows, T, heads, head_dim]
  int rows = 0, queries = 0, heads = 0, head_dim = 0, slots = 0;
  bool steps_per_row = false;
  Floats floats = Floats::kBFloat16;  // activations, keys and values
  // The kernel of ring_attention_clustered.h (nn/fused_ops.cpp asks for it
  // unless PERSONAPLEX_RING_ATTENTION=single): a running softmax a warp, and
  // at few (row, head)s their slots split over the blocks of a cluster
  // (compute 9.0+). Measured on an H200 with Mimi bf16 at one row: encode
  // 0.545 ms, decode 0.532 ms against 0.671 and 0.666 with the single-block
  // kernel; the same at 8 and 64 rows.
  bool clusters = false;
};

// Whether ring_attention takes these sizes: an even head size up to 256,
// up to 8 queries and fewer than the slots, the queries' scores within
// 48 KiB of shared memory.
bool ring_attention_fits(int queries, int head_dim, int slots, Floats floats);

// Launches on `stream` (capturable); returns the launch's error.
cudaError_t ring_attention(const RingAttention &args, cudaStream_t stream);

}  // namespace personaplex::cuda
