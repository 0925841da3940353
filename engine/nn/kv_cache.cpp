#include "nn/kv_cache.h"

#include "core/error.h"

namespace personaplex::nn {

RingKVCache::RingKVCache(int64_t batch, int64_t heads, int64_t capacity, int64_t head_dim,
                         const at::TensorOptions &options)
    : keys_(at::zeros({batch, heads, capacity, head_dim}, options)),
      values_(at::zeros({batch, heads, capacity, head_dim}, options)),
      capacity_(capacity) {}

void RingKVCache::write(const at::Tensor &k, const at::Tensor &v, const at::Tensor &slots) {
  const int64_t T = k.size(2);
  if (T > capacity_)
    throw Error("KV cache: " + std::to_string(T) + " steps at once exceed its capacity of " +
                std::to_string(capacity_));
  if (slots.dim() == 2) {
    const at::Tensor index = slots.view({k.size(0), 1, T, 1}).expand(k.sizes());
    keys_.scatter_(2, index, k.to(keys_.scalar_type()));
    values_.scatter_(2, index, v.to(values_.scalar_type()));
  } else {
    keys_.index_copy_(2, slots, k.to(keys_.scalar_type()));
    values_.index_copy_(2, slots, v.to(values_.scalar_type()));
  }
  end_ += T;
}

void RingKVCache::append(const at::Tensor &k, const at::Tensor &v) {
  auto opts = at::TensorOptions().dtype(at::kLong).device(keys_.device());
  write(k, v, at::remainder(at::arange(end_, end_ + k.size(2), opts), capacity_));
}

at::Tensor RingKVCache::labels(const at::Tensor &end, const at::Tensor &slot_ids, int64_t capacity) {
  // As the reference labels its ring: slot s holds the latest step p < end
  // with p % capacity == s, except that once the ring has wrapped, the slot
  // about to be overwritten next (s == end % capacity, the oldest step) is
  // labelled `end`, a future step, and so is never attended to. Reproduced
  // on purpose: a window of capacity-1 past steps is what the reference's
  // outputs were computed with.
  at::Tensor delta = slot_ids - at::remainder(end, capacity);
  at::Tensor pos = at::where(delta <= 0, end + delta, end + delta - capacity);
  return at::where(slot_ids < end, pos, at::full_like(pos, -1));
}

at::Tensor RingKVCache::positions() const {
  auto opts = at::TensorOptions().dtype(at::kLong).device(keys_.device());
  return labels(at::full({1}, end_, opts), at::arange(capacity_, opts), capacity_);
}

void RingKVCache::reset() {
  end_ = 0;
  keys_.zero_();
  values_.zero_();
}

}  // namespace personaplex::nn
