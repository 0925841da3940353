// The temporal transformer's KV cache, all layers: `capacity` slots (the
// context). Steps are written in order; once `pin(n)` is called, the first n
// steps keep their slots forever and later steps roll over the remaining
// ones. Without pinning it is the reference's ring: the last `capacity` steps.
//
// The host keeps the layout (which slot the next step takes); the device
// holds the keys and values and which slots are written or pinned, so a step
// can run (and be captured as a CUDA graph) without the host in the loop.
// Memory is allocated once: however long a conversation runs, the cache
// tensors never grow. The tensors are the cache's own, or views of one row
// of a batch server's KVRows (everything here then writes into that row).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "lm/kv_rows.h"

namespace personaplex::lm {

class PinnedKVCache {
 public:
  PinnedKVCache() = default;
  PinnedKVCache(int64_t layers, int64_t batch, int64_t heads, int64_t capacity, int64_t head_dim,
                const at::TensorOptions &options, KvFormat format = KvFormat::kModelDtype);
  // Views of `storage`'s row `row` (batch 1); an empty cache, the row's
  // flags cleared.
  PinnedKVCache(const KVRows &storage, int64_t row);

  // Per layer: [B, H, allocated, D]; slots at or past capacity() stay unused
  // (the allocation is rounded up for attention kernels).
  const KvLayer &layer(size_t i) const { return layers_[i]; }
  const at::Tensor &written() const { return written_; }  // bool [allocated]
  const at::Tensor &pinned_slots() const { return pinned_slots_; }  // bool [allocated]

  int64_t end() const { return end_; }  // steps written
  int64_t pinned() const { return pinned_; }
  int64_t capacity() const { return capacity_; }
  int64_t slot(int64_t t) const;     // slot of step t
  int64_t next_slot() const { return slot(end_); }
  // The next step sees the pinned keys from the end of the context (the
  // window has rolled past them).
  bool split() const { return pinned_ > 0 && end_ >= capacity_; }
  void advance(int64_t steps = 1) { end_ += steps; }  // the next steps were written

  // Keeps steps 0..n-1 for good. Allowed while nothing has been overwritten
  // (end() <= capacity) and n < capacity; throws Error otherwise.
  void pin(int64_t n);
  void reset();
  // The keys and values of the first n steps, copied ([B, H, n, D] per
  // layer); and back into an empty cache, which then holds n steps written
  // in order with the first `pinned` of them pinned.
  struct Prefix {
    std::vector<KvLayer> layers;
    int64_t steps = 0, pinned = 0;
  };
  Prefix prefix(int64_t n) const;
  void restore(const Prefix &prefix);

 private:
  std::vector<KvLayer> layers_;
  at::Tensor written_, pinned_slots_;
  int64_t capacity_ = 0;
  int64_t end_ = 0;
  int64_t pinned_ = 0;
};

}  // namespace personaplex::lm
