// The temporal KV storage of a batch server: one tensor per layer with a row
// per slot, so one attention call covers every conversation of a step. Each
// slot's conversation sees its row through a PinnedKVCache view.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "lm/kv_layer.h"

namespace personaplex::lm {

struct KVRows {
  KVRows() = default;
  KVRows(int64_t layers, int64_t rows, int64_t heads, int64_t capacity, int64_t head_dim,
         const at::TensorOptions &options, KvFormat format = KvFormat::kModelDtype);

  // Per layer: [rows, H, allocated, D] (fp8: bytes and scales).
  std::vector<KvLayer> layers;
  at::Tensor written, pinned;  // bool [rows, allocated]
  int64_t capacity = 0;        // usable slots per row (allocated is rounded up)

  int64_t rows() const { return written.size(0); }
  int64_t allocated() const { return written.size(1); }
};

// Slots allocated for a capacity: rounded up to 16 for attention kernels.
int64_t kv_allocation(int64_t capacity);

}  // namespace personaplex::lm
