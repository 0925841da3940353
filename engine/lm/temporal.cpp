#include "lm/temporal.h"

#include <torch/version.h>

#include <algorithm>
#include <cmath>

#include "lm/ops.h"
#include "nn/rope.h"

namespace personaplex::lm {
namespace {

at::Tensor plain_attention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v);
#else
  at::Tensor s = at::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(q.size(-1)));
  return at::matmul(at::softmax(s.to(at::kFloat), -1).to(v.scalar_type()), v);
#endif
}

at::Tensor rotate(const at::Tensor &x, int64_t position, double max_period) {
  at::Tensor a = x, b = x;
  at::Tensor pos = at::full({1}, position, x.options().dtype(at::kLong));
  nn::apply_rope(a, b, pos, max_period);
  return a;
}

// One query against the pinned keys (seen from `pinned_pos`) and the rolling
// keys (seen from the query's own position): one softmax over both.
at::Tensor split_attention(const at::Tensor &q_roll, const at::Tensor &q_pin,
                           const PinnedKVCache &cache) {
  const int64_t P = cache.pinned(), C = cache.capacity();
  const double scale = 1.0 / std::sqrt(double(q_roll.size(-1)));
  at::Tensor k = cache.keys();
  at::Tensor sp = at::matmul(q_pin, k.narrow(2, 0, P).transpose(-2, -1));
  at::Tensor sr = at::matmul(q_roll, k.narrow(2, P, C - P).transpose(-2, -1));
  at::Tensor p = at::softmax(at::cat({sp, sr}, -1).to(at::kFloat) * scale, -1);
  return at::matmul(p.to(cache.values().scalar_type()), cache.values());
}

at::Tensor self_attention(const nn::LayerWeights &l, const nn::TransformerConfig &c,
                          const at::Tensor &x, PinnedKVCache &cache, int64_t t) {
  const int64_t B = x.size(0), H = c.num_heads;
  at::Tensor qkv = at::linear(x, l.in_proj).view({B, 1, 3, H, -1}).permute({2, 0, 3, 1, 4});
  at::Tensor q_raw = qkv[0], q = qkv[0], k = qkv[1], v = qkv[2];
  at::Tensor pos = at::full({1}, t, x.options().dtype(at::kLong));
  nn::apply_rope(q, k, pos, c.max_period);
  cache.append(k, v);
  at::Tensor y;
  const int64_t C = cache.capacity();
  if (cache.end() <= C) {  // nothing overwritten yet: slot s holds step s
    y = plain_attention(q, cache.keys().narrow(2, 0, cache.end()),
                        cache.values().narrow(2, 0, cache.end()));
  } else if (cache.pinned() == 0) {  // the reference's window: the last C steps
    y = plain_attention(q, cache.keys(), cache.values());
  } else {
    y = split_attention(q, rotate(q_raw, C - 1, c.max_period), cache);
  }
  return at::linear(y.transpose(1, 2).reshape({B, 1, -1}), l.out_proj);
}

}  // namespace

void TemporalState::reset() {
  for (auto &c : caches) c.reset();
  offset = 0;
}

void TemporalState::pin(int64_t steps) {
  for (auto &c : caches) c.pin(steps);
}

int64_t kv_capacity(const LmConfig &c) {
  // The reference's ring of `context` slots labels its oldest slot as the
  // newest once full, so each step attends to the last context - 1 steps: a
  // plain ring of context - 1 slots.
  return std::max<int64_t>(1, c.context - 1);
}

TemporalState new_temporal_state(const LmWeights &w) {
  const auto &c = w.config;
  TemporalState s;
  auto opts = at::TensorOptions().dtype(w.dtype).device(w.device());
  for (int64_t i = 0; i < c.num_layers; ++i)
    s.caches.emplace_back(1, c.num_heads, kv_capacity(c), c.dim / c.num_heads, opts);
  return s;
}

at::Tensor temporal_step(const LmWeights &w, const at::Tensor &input, TemporalState &state) {
  const auto &c = w.transformer.config;
  const bool f32 = c.norm == nn::Norm::RmsNormF32;
  at::Tensor x = input;
  for (size_t i = 0; i < w.transformer.layers.size(); ++i) {
    const auto &l = w.transformer.layers[i];
    x = x + self_attention(l, c, rms_norm(x, l.norm1_w, f32), state.caches[i], state.offset);
    x = x + gated_silu(rms_norm(x, l.norm2_w, f32), l.mlp_in, l.mlp_out);
  }
  ++state.offset;
  return x;
}

}  // namespace personaplex::lm
