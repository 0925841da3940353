// One query per row and head over a KV cache, as a step decodes: scores,
// softmax and the values' weighted sum in one pass over the cache (no score
// matrix, no mask tensor), the keys and values read once, as bf16, fp32 or
// fp8 (e4m3) bytes with a scale per vector, and widened in registers.
//
// Each row attends over the slots below `span` that its `written` flags
// mark. Rows whose `split` flag is set score the slots their `pinned` flags
// mark (below `pinned_span`) with `q_pin` instead of `q` (the temporal
// transformer's pinned prompt, seen from the end of the context).
//
// Long spans with few rows and heads are split across blocks (flash
// decoding): each block keeps its running maximum, sum and weighted values,
// and a second launch merges them. Plain pointers and a stream: nothing of
// libtorch (lm/decode_attention.cpp calls it with its tensors).
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace personaplex::cuda {

enum class AttentionFloats { kFloat32, kBFloat16 };  // queries, output and unquantized keys and values

struct DecodeAttention {
  const void *q = nullptr;      // [rows, heads, head_dim], contiguous
  const void *q_pin = nullptr;  // the same, or null when no row is split
  const void *keys = nullptr, *values = nullptr;  // [rows, heads, allocated, head_dim], contiguous
  const float *key_scales = nullptr, *value_scales = nullptr;  // [rows, heads, allocated]: fp8 keys and values
  const bool *written = nullptr;  // [rows, allocated]
  const bool *pinned = nullptr;   // [rows, allocated], or null
  const bool *split = nullptr;    // [rows], or null
  // [rows]: row r has no written slot at or past filled[r] (a bound found
  // on the device, so that a captured graph reads only the written part of
  // a cache), or null: the whole span is read.
  const int *filled = nullptr;
  void *out = nullptr;            // [rows, heads, head_dim]
  float *workspace = nullptr;     // decode_attention_workspace(...) floats (unused with one split)
  int rows = 0, heads = 0, head_dim = 0, allocated = 0, span = 0, pinned_span = 0;
  AttentionFloats floats = AttentionFloats::kBFloat16;
  bool fp8 = false;  // keys and values are e4m3 bytes with scales
};

// Whether the kernel takes this head size (16, 32, 64, 128 or 256) and these
// sizes.
bool decode_attention_fits(int head_dim, int span, int allocated);
// How many blocks share one row and head's span.
int decode_attention_splits(int rows, int heads, int span);
// Floats of workspace a launch needs (0 with one split).
size_t decode_attention_workspace(int rows, int heads, int head_dim, int span);

// Launches on `stream` (capturable in a CUDA graph); returns the launch's error.
cudaError_t decode_attention(const DecodeAttention &args, cudaStream_t stream);

}  // namespace personaplex::cuda
