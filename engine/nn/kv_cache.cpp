#include "nn/kv_cache.h"

#include "core/error.h"

namespace personaplex::nn {

RingKVCache::RingKVCache(int64_t batch, int64_t heads, int64_t capacity, int64_t head_dim,
                         const at::TensorOptions &options)
    : keys_(at::zeros({batch, heads, capacity, head_dim}, options)),
      values_(at::zeros({batch, heads, capacity, head_dim}, options)),
      capacity_(capacity) {}

void RingKVCache::append(const at::Tensor &k, const at::Tensor &v) {
  const int64_t T = k.size(2);
  if (T > capacity_)
    throw Error("KV cache: " + std::to_string(T) + " steps at once exceed its capacity of " +
                std::to_string(capacity_));
  at::Tensor slots = at::remainder(
      at::arange(end_, end_ + T, at::TensorOptions().dtype(at::kLong).device(k.device())),
      capacity_);
  keys_.index_copy_(2, slots, k.to(keys_.scalar_type()));
  values_.index_copy_(2, slots, v.to(values_.scalar_type()));
  end_ += T;
}

at::Tensor RingKVCache::positions() const {
  // As the reference labels its ring: slot s holds the latest step p < end
  // with p % capacity == s, except that once the ring has wrapped, the slot
  // about to be overwritten next (s == end % capacity, the oldest step) is
  // labelled `end`, a future step, and so is never attended to. Reproduced
  // on purpose: a window of capacity-1 past steps is what the reference's
  // outputs were computed with.
  auto opts = at::TensorOptions().dtype(at::kLong).device(keys_.device());
  at::Tensor slot = at::arange(capacity_, opts);
  at::Tensor delta = slot - (end_ % capacity_);
  at::Tensor pos = at::where(delta <= 0, delta + end_, delta + (end_ - capacity_));
  return at::where(slot < end_, pos, at::full_like(pos, -1));
}

void RingKVCache::reset() {
  end_ = 0;
  keys_.zero_();
  values_.zero_();
}

}  // namespace personaplex::nn
