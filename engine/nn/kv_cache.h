// A streaming key/value cache: a ring of `capacity` slots per layer, so memory
// stays flat however long a stream runs. Positions keep counting; a slot's
// position says which step it holds (-1: never written).
#pragma once

#include <ATen/ATen.h>

namespace personaplex::nn {

class RingKVCache {
 public:
  RingKVCache() = default;
  RingKVCache(int64_t batch, int64_t heads, int64_t capacity, int64_t head_dim,
              const at::TensorOptions &options);

  // Stores k, v ([B, H, T, D], T <= capacity) for steps end()..end()+T-1.
  void append(const at::Tensor &k, const at::Tensor &v);
  // The same with the slots ([T], int64, on the cache's device) computed by
  // the caller: no host arithmetic on positions, so a CUDA graph can replay it.
  // Slots [B, T]: each row (an independent stream) at its own slots.
  void write(const at::Tensor &k, const at::Tensor &v, const at::Tensor &slots);
  // Counts T steps that a kernel wrote into keys() and values() itself.
  void wrote(int64_t steps) { end_ += steps; }
  // The reference's slot labels for a ring of `capacity` once `end` ([1]
  // int64 tensor, or [B, 1] for one ring per row: [B, capacity]) steps are
  // written; slot_ids = arange(capacity).
  static at::Tensor labels(const at::Tensor &end, const at::Tensor &slot_ids, int64_t capacity);
  // Whole ring, [B, H, capacity, D], and each slot's step position, [capacity]
  // (the reference's labelling: see positions() in kv_cache.cpp).
  const at::Tensor &keys() const { return keys_; }
  const at::Tensor &values() const { return values_; }
  at::Tensor positions() const;

  int64_t end() const { return end_; }  // steps written so far
  int64_t capacity() const { return capacity_; }
  void reset();

 private:
  at::Tensor keys_, values_;
  int64_t capacity_ = 0;
  int64_t end_ = 0;
};

}  // namespace personaplex::nn
