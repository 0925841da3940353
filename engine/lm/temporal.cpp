#include "lm/temporal.h"

#include <torch/version.h>

#include <algorithm>
#include <cmath>

#include "lm/ops.h"

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

// Interleaved RoPE at one position, computed once per step for all layers
// (same arithmetic as the reference: fp32 angles, rotation in fp32).
struct Rotation {
  at::Tensor cos, sin;  // fp32 [D/2]
};

at::Tensor nn_rope_frequencies(int64_t head_dim, double max_period, const at::Device &device) {
  auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  return at::exp(at::arange(head_dim / 2, f32) * float(-std::log(max_period) * 2.0 / double(head_dim)));
}

Rotation rotation(const at::Tensor &freqs, int64_t position) {
  at::Tensor angle = freqs * float(position);
  return {at::cos(angle), at::sin(angle)};
}

at::Tensor rotate(const at::Tensor &x, const Rotation &r) {
  at::Tensor pairs = x.to(at::kFloat).unflatten(-1, {-1, 2});
  at::Tensor re = pairs.select(-1, 0), im = pairs.select(-1, 1);
  return at::stack({re * r.cos - im * r.sin, re * r.sin + im * r.cos}, -1).flatten(-2).to(x.scalar_type());
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
                          const at::Tensor &x, PinnedKVCache &cache, const Rotation &rot,
                          const Rotation *pinned_rot) {
  const int64_t B = x.size(0), H = c.num_heads;
  at::Tensor qkv = at::linear(x, l.in_proj).view({B, 1, 3, H, -1}).permute({2, 0, 3, 1, 4});
  at::Tensor qk = rotate(qkv.narrow(0, 0, 2), rot);
  at::Tensor q = qk[0];
  cache.append(qk[1], qkv[2]);
  at::Tensor y;
  const int64_t C = cache.capacity();
  if (cache.end() <= C) {  // nothing overwritten yet: slot s holds step s
    y = plain_attention(q, cache.keys().narrow(2, 0, cache.end()),
                        cache.values().narrow(2, 0, cache.end()));
  } else if (!pinned_rot) {  // the reference's window: the last C steps
    y = plain_attention(q, cache.keys(), cache.values());
  } else {
    y = split_attention(q, rotate(qkv[0], *pinned_rot), cache);
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
  if (!state.freqs.defined())
    state.freqs = nn_rope_frequencies(c.d_model / c.num_heads, c.max_period, input.device());
  const Rotation rot = rotation(state.freqs, state.offset);
  // Once the window has rolled, pinned keys are seen from the end of the context.
  const PinnedKVCache &first = state.caches.front();
  Rotation pinned_rot;
  const bool split = first.pinned() > 0 && state.offset >= first.capacity();
  if (split) pinned_rot = rotation(state.freqs, first.capacity() - 1);
  at::Tensor x = input;
  for (size_t i = 0; i < w.transformer.layers.size(); ++i) {
    const auto &l = w.transformer.layers[i];
    x = x + self_attention(l, c, rms_norm(x, l.norm1_w, f32), state.caches[i], rot,
                           split ? &pinned_rot : nullptr);
    x = x + gated_silu(rms_norm(x, l.norm2_w, f32), l.mlp_in, l.mlp_out);
  }
  ++state.offset;
  return x;
}

}  // namespace personaplex::lm
