#include "lm/pinned_kv_cache.h"

#include "core/error.h"

namespace personaplex::lm {

PinnedKVCache::PinnedKVCache(int64_t batch, int64_t heads, int64_t capacity, int64_t head_dim,
                             const at::TensorOptions &options)
    : keys_(at::zeros({batch, heads, capacity, head_dim}, options)),
      values_(at::zeros({batch, heads, capacity, head_dim}, options)),
      capacity_(capacity) {}

int64_t PinnedKVCache::slot(int64_t t) const {
  if (t < pinned_) return t;
  return pinned_ + (t - pinned_) % (capacity_ - pinned_);
}

void PinnedKVCache::append(const at::Tensor &k, const at::Tensor &v) {
  const int64_t s = slot(end_);
  keys_.narrow(2, s, 1).copy_(k);
  values_.narrow(2, s, 1).copy_(v);
  ++end_;
}

void PinnedKVCache::pin(int64_t n) {
  if (n < 0 || n > end_)
    throw Error("KV cache: cannot pin " + std::to_string(n) + " steps out of " +
                std::to_string(end_) + " written");
  if (n >= capacity_)
    throw Error("KV cache: pinning " + std::to_string(n) + " steps leaves no room in a context of " +
                std::to_string(capacity_));
  if (end_ > capacity_)
    throw Error("KV cache: too late to pin, the first steps were already overwritten");
  pinned_ = n;
}

void PinnedKVCache::reset() {
  end_ = 0;
  pinned_ = 0;
}

}  // namespace personaplex::lm
