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
  // Slot s holds the latest step p < end with p % capacity == s.
  auto opts = at::TensorOptions().dtype(at::kLong).device(keys_.device());
  at::Tensor slot = at::arange(capacity_, opts);
  int64_t last = end_ - 1;
  at::Tensor pos = last - at::remainder(last - slot, capacity_);
  return at::where(pos >= 0, pos, at::full_like(pos, -1));
}

void RingKVCache::reset() {
  end_ = 0;
  keys_.zero_();
  values_.zero_();
}

}  // namespace personaplex::nn
