// The temporal transformer's KV cache: `capacity` slots (the context). Steps
// are written in order; once `pin(n)` is called, the first n steps keep
// their slots forever and later steps roll over the remaining ones. Without
// pinning it is the reference's ring: the last `capacity` steps.
//
// Memory is allocated once: however long a conversation runs, the cache
// tensors never grow.
#pragma once

#include <ATen/ATen.h>

namespace personaplex::lm {

class PinnedKVCache {
 public:
  PinnedKVCache() = default;
  PinnedKVCache(int64_t batch, int64_t heads, int64_t capacity, int64_t head_dim,
                const at::TensorOptions &options);

  // Stores one step's k, v ([B, H, 1, D]).
  void append(const at::Tensor &k, const at::Tensor &v);
  // Keeps steps 0..n-1 for good. Allowed while nothing has been overwritten
  // (end() <= capacity) and n < capacity; throws Error otherwise.
  void pin(int64_t n);

  const at::Tensor &keys() const { return keys_; }      // [B, H, capacity, D]
  const at::Tensor &values() const { return values_; }  // [B, H, capacity, D]
  int64_t end() const { return end_; }                  // steps written
  int64_t pinned() const { return pinned_; }
  int64_t capacity() const { return capacity_; }
  bool full() const { return end_ >= capacity_; }
  // Slot of step t.
  int64_t slot(int64_t t) const;
  void reset();

 private:
  at::Tensor keys_, values_;
  int64_t capacity_ = 0;
  int64_t end_ = 0;
  int64_t pinned_ = 0;
};

}  // namespace personaplex::lm
