#include "lm/pinned_kv_cache.h"

#include <algorithm>

#include "core/error.h"

namespace personaplex::lm {

PinnedKVCache::PinnedKVCache(int64_t layers, int64_t batch, int64_t heads, int64_t capacity,
                             int64_t head_dim, const at::TensorOptions &options, KvFormat format)
    : capacity_(capacity) {
  const int64_t allocated = kv_allocation(capacity);
  for (int64_t i = 0; i < layers; ++i)
    layers_.push_back(KvLayer::zeros(batch, heads, allocated, head_dim, format, options));
  auto flags = options.dtype(at::kBool);
  written_ = at::zeros({allocated}, flags);
  pinned_slots_ = at::zeros({allocated}, flags);
}

PinnedKVCache::PinnedKVCache(const KVRows &storage, int64_t row) : capacity_(storage.capacity) {
  for (const KvLayer &l : storage.layers) layers_.push_back(l.rows(row, 1));
  written_ = storage.written[row];
  pinned_slots_ = storage.pinned[row];
  reset();
}

int64_t PinnedKVCache::slot(int64_t t) const {
  if (t < pinned_) return t;
  return pinned_ + (t - pinned_) % (capacity_ - pinned_);
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
  pinned_slots_.zero_();
  pinned_slots_.narrow(0, 0, n).fill_(true);
}

PinnedKVCache::Prefix PinnedKVCache::prefix(int64_t n) const {
  if (n < 0 || n > end_ || end_ > capacity_)
    throw Error("KV cache: no prefix of " + std::to_string(n) + " steps in order (" + std::to_string(end_) +
                " written)");
  Prefix p;
  for (const KvLayer &l : layers_) p.layers.push_back(l.slots(0, n).clone());
  p.steps = n;
  p.pinned = std::min(pinned_, n);
  return p;
}

void PinnedKVCache::restore(const Prefix &p) {
  if (end_ != 0) throw Error("KV cache: a prefix goes into an empty cache only");
  if (p.layers.size() != layers_.size() || p.steps >= capacity_ ||
      (!layers_.empty() && p.layers[0].fp8() != layers_[0].fp8()))
    throw Error("KV cache: a prefix of another model, KV format or too long for this cache");
  for (size_t i = 0; i < layers_.size(); ++i) layers_[i].slots(0, p.steps).copy_(p.layers[i]);
  written_.narrow(0, 0, p.steps).fill_(true);
  end_ = p.steps;
  if (p.pinned > 0) pin(p.pinned);
}

void PinnedKVCache::reset() {
  end_ = 0;
  pinned_ = 0;
  written_.zero_();
  pinned_slots_.zero_();
}

}  // namespace personaplex::lm
