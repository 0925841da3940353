#include "serving/temporal_batch.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "lm/decode_attention.h"
#include "lm/ops.h"
#include "lm/residual.h"
#include "lm/temporal.h"
#include "lm/temporal_ops.h"
#include "nn/layer_feed.h"

namespace personaplex::serving {

using namespace lm;  // the model this layer serves
namespace {

// Split rows score their pinned slots with the query seen from the end of
// the context (q_pin), the rest with the query at its own position (q_roll).
// Attention scores q_roll·k * scale, so adding scale * (q_pin - q_roll)·k on
// a split row's pinned slots gives the same scores in one call; only the
// pinned prefix needs that product. Per step: which of those slots take it,
// and the rest of the mask (0 written, -inf not).
struct SplitMask {
  at::Tensor use;   // bool [R, 1, 1, P]
  at::Tensor base;  // fp32 [R, 1, 1, span]

  SplitMask(const at::Tensor &written, const at::Tensor &pinned, const at::Tensor &split) {
    const int64_t R = written.size(0);
    use = at::logical_and(pinned, split.unsqueeze(1)).view({R, 1, 1, -1});
    base = at::zeros({R, 1, 1, written.size(1)}, split.options().dtype(at::kFloat))
               .masked_fill_(written.view({R, 1, 1, -1}).logical_not(), -std::numeric_limits<float>::infinity());
  }

  // A layer's additive mask [R, H, 1, span], in the query's dtype as
  // scaled_dot_product_attention takes it.
  at::Tensor operator()(const at::Tensor &q_roll, const at::Tensor &q_pin, const at::Tensor &keys) const {
    const int64_t P = use.size(-1), span = base.size(-1);
    const double scale = 1.0 / std::sqrt(double(q_roll.size(-1)));
    at::Tensor kt = keys.narrow(2, 0, P).to(at::kFloat).transpose(-2, -1);
    at::Tensor delta = at::matmul(q_pin.to(at::kFloat) - q_roll.to(at::kFloat), kt) * scale;  // [R, H, 1, P]
    delta = delta.masked_fill(use.logical_not(), 0.0);
    return (at::constant_pad_nd(delta, {0, span - P}) + base).to(q_roll.scalar_type());
  }
};

}  // namespace

int64_t attention_span(const KVRows &kv, int64_t steps) {
  return std::min(kv.allocated(), (std::max<int64_t>(steps, 1) + 15) / 16 * 16);
}

at::Tensor temporal_step_rows(const LmWeights &w, const RowsStep &in, KVRows &kv) {
  const auto &c = w.transformer.config;
  const bool f32 = c.norm == nn::Norm::RmsNormF32;
  const int64_t R = in.x.size(0), H = c.num_heads, span = in.span;
  const at::Tensor slots = in.where.select(1, 1);
  const Rotation rot = rotation(in.freqs, in.where.select(1, 0).view({R, 1, 1}));
  Rotation pin_rot;
  if (in.pinned > 0) pin_rot = rotation(in.freqs, in.where.select(1, 2).view({R, 1, 1}));
  kv.written.narrow(0, 0, R).scatter_(1, slots.view({R, 1}), true);
  const at::Tensor written = kv.written.narrow(0, 0, R).narrow(1, 0, span);
  const at::Tensor filled = chosen_written_extent(written);
  std::optional<SplitMask> split_mask;  // made by the first layer that needs it
  nn::LayerFeed layers(w.transformer, in.x.device());
  Residual x(in.x, first_norm(w), f32);
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto &l = layers[i];
    at::Tensor qkv =
        nn::linear(x.normed(), l.in_proj, x.normed_rows()).view({R, 1, 3, H, -1}).permute({2, 0, 3, 1, 4});
    at::Tensor qk = rotate(qkv.narrow(0, 0, 2), rot);  // [2, R, H, 1, D]
    const KvLayer cache = kv.layers[i].rows(0, R);
    cache.write_rows(slots, qk[1], qkv[2]);
    at::Tensor q_pin = in.pinned > 0 ? rotate(qkv[0], pin_rot) : at::Tensor();
    DecodeQuery query{qk[0], q_pin, kv.written.narrow(0, 0, R), kv.pinned.narrow(0, 0, R), in.split, span, in.pinned,
                      filled};
    std::optional<at::Tensor> y = fused_decode_attention(query, cache);  // [R, H, 1, D]
    if (!y) {
      const KvLayer seen = cache.slots(0, span);
      const at::Tensor keys = seen.read_keys(qk.scalar_type()), values = seen.read_values(qk.scalar_type());
      if (in.pinned > 0 && !split_mask)
        split_mask.emplace(written, kv.pinned.narrow(0, 0, R).narrow(1, 0, in.pinned), in.split);
      at::Tensor mask = split_mask ? (*split_mask)(qk[0], q_pin, keys) : written.view({R, 1, 1, span});
      y = masked_attention(qk[0], keys, values, mask);
    }
    x.add(nn::linear(y->transpose(1, 2).reshape({R, 1, -1}), l.out_proj), l.norm2_w, &l.mlp_in);
    // The next layer's q/k/v product has this one's sizes and format.
    x.add(gated_silu(x.normed(), l.mlp_in, l.mlp_out, x.normed_rows()), next_norm(w, i), &l.in_proj);
  }
  return x.x();
}

}  // namespace personaplex::serving
