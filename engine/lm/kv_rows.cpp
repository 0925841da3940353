#include "lm/kv_rows.h"

namespace personaplex::lm {

int64_t kv_allocation(int64_t capacity) { return (capacity + 15) / 16 * 16; }

KVRows::KVRows(int64_t layers, int64_t rows, int64_t heads, int64_t capacity, int64_t head_dim,
               const at::TensorOptions &options, KvFormat format)
    : capacity(capacity) {
  const int64_t allocated = kv_allocation(capacity);
  for (int64_t i = 0; i < layers; ++i)
    this->layers.push_back(KvLayer::zeros(rows, heads, allocated, head_dim, format, options));
  auto flags = options.dtype(at::kBool);
  written = at::zeros({rows, allocated}, flags);
  pinned = at::zeros({rows, allocated}, flags);
}

}  // namespace personaplex::lm
