#include "lm/temporal.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "core/error.h"
#include "core/yield_point.h"
#include "lm/decode_attention.h"
#include "lm/ops.h"
#include "lm/residual.h"
#include "lm/temporal_ops.h"
#include "nn/layer_feed.h"

namespace personaplex::lm {
namespace {

// Pinned slots scored with the query seen from the end of the context,
// rolling slots with the query at its own position; one softmax over both.
// In fp32, as the fused kernels compute scores.
at::Tensor split_attention(const at::Tensor &q_roll, const at::Tensor &q_pin, const at::Tensor &k,
                           const at::Tensor &v, const at::Tensor &written, const at::Tensor &pinned) {
  const double scale = 1.0 / std::sqrt(double(q_roll.size(-1)));
  at::Tensor kt = k.to(at::kFloat).transpose(-2, -1);
  at::Tensor s = at::where(pinned, at::matmul(q_pin.to(at::kFloat), kt), at::matmul(q_roll.to(at::kFloat), kt));
  s = (s * scale).masked_fill(written.logical_not(), -std::numeric_limits<float>::infinity());
  return at::matmul(at::softmax(s, -1), v.to(at::kFloat)).to(v.scalar_type());
}

// One conversation's attention from its projected qkv [3, 1, H, 1, D]:
// writes its key and value at `slot`, returns [1, H, 1, D]. `filled`: the
// step's written_extent, or undefined.
at::Tensor attend_one(const at::Tensor &qkv, PinnedKVCache &kv, size_t layer, const at::Tensor &slot,
                      const Rotation &rot, const Rotation *pinned_rot, const at::Tensor &filled) {
  at::Tensor qk = rotate(qkv.narrow(0, 0, 2), rot);
  const KvLayer &cache = kv.layer(layer);
  cache.write_rows(slot, qk[1], qkv[2]);
  at::Tensor q_pin = pinned_rot ? rotate(qkv[0], *pinned_rot) : at::Tensor();
  DecodeQuery query{qk[0], q_pin, kv.written(), kv.pinned_slots(), {}, cache.keys.size(2), cache.keys.size(2),
                    filled};
  if (std::optional<at::Tensor> y = fused_decode_attention(query, cache)) return *y;
  const at::Tensor keys = cache.read_keys(qk.scalar_type()), values = cache.read_values(qk.scalar_type());
  return pinned_rot ? split_attention(qk[0], q_pin, keys, values, kv.written(), kv.pinned_slots())
                    : masked_attention(qk[0], keys, values, kv.written().view({1, 1, 1, -1}));
}

at::Tensor self_attention(const nn::LayerWeights &l, const nn::TransformerConfig &c, const at::Tensor &x,
                          PinnedKVCache &kv, size_t layer, const at::Tensor &slot, const Rotation &rot,
                          const Rotation *pinned_rot, const at::Tensor &filled) {
  const int64_t B = x.size(0), H = c.num_heads;
  at::Tensor qkv = nn::linear(x, l.in_proj).view({B, 1, 3, H, -1}).permute({2, 0, 3, 1, 4});
  at::Tensor y = attend_one(qkv, kv, layer, slot, rot, pinned_rot, filled);
  return nn::linear(y.transpose(1, 2).reshape({B, 1, -1}), l.out_proj);
}

// One chunk's attention from its projected rows qkv [1, T, 3 * dim]: writes
// its keys and values from slot `first`, returns [1, T, dim] (before the
// output projection).
at::Tensor chunk_attention(const nn::TransformerConfig &c, const at::Tensor &qkv_rows, PinnedKVCache &kv,
                           size_t layer, int64_t first, const Rotation &rot, const at::Tensor &mask) {
  const int64_t B = qkv_rows.size(0), T = qkv_rows.size(1), H = c.num_heads;
  at::Tensor qkv = qkv_rows.view({B, T, 3, H, -1}).permute({2, 0, 3, 1, 4});
  at::Tensor qk = rotate(qkv.narrow(0, 0, 2), rot);
  const KvLayer &cache = kv.layer(layer);
  cache.write_range(first, qk[1], qkv[2]);
  const KvLayer seen = cache.slots(0, first + T);
  at::Tensor y = masked_attention(qk[0], seen.read_keys(qk.scalar_type()), seen.read_values(qk.scalar_type()), mask);
  return y.transpose(1, 2).reshape({B, T, -1});
}

// Where one chunk sits in its cache and in the rows of a pass.
struct ChunkPlace {
  TemporalState *state;
  int64_t row, T, first;
  Rotation rot;
  at::Tensor mask;
};

// Chunks' rows one after another, [1, sum of T, dim] (one chunk as it is).
at::Tensor rows_of(const std::vector<at::Tensor> &chunks) {
  return chunks.size() == 1 ? chunks[0] : at::cat(chunks, 1);
}

ChunkPlace place_chunk(TemporalState &state, int64_t row, int64_t T, const at::Device &device) {
  if (!prefill_fits(state, T))
    throw Error("prefill of " + std::to_string(T) + " steps does not fit the KV cache (" +
                std::to_string(state.kv.end()) + " of " + std::to_string(state.kv.capacity()) +
                " slots written)");
  // In order and without roll-over, step t sits in slot t.
  const int64_t first = state.kv.next_slot();
  auto longs = at::TensorOptions().dtype(at::kLong).device(device);
  at::Tensor positions = at::arange(state.offset, state.offset + T, longs);
  // The chunk's queries over slots 0..first+T-1: all earlier slots, and the
  // chunk's own up to each query (causal).
  at::Tensor mask = (at::arange(first + T, longs).unsqueeze(0) <= at::arange(first, first + T, longs).unsqueeze(1))
                        .view({1, 1, T, first + T});
  return ChunkPlace{&state, row, T, first, rotation(state.freqs, positions), mask};
}

}  // namespace

bool prefill_fits(const TemporalState &state, int64_t steps) {
  return steps > 0 && !state.kv.split() && state.kv.end() + steps <= state.kv.capacity();
}

at::Tensor temporal_prefill(const LmWeights &w, const at::Tensor &input, TemporalState &state) {
  return temporal_prefill_chunks(w, {PrefillChunk{input, &state}})[0];
}

std::vector<at::Tensor> temporal_prefill_chunks(const LmWeights &w, const std::vector<PrefillChunk> &chunks) {
  const auto &c = w.transformer.config;
  const bool f32 = c.norm == nn::Norm::RmsNormF32;
  if (chunks.empty()) return {};
  std::vector<ChunkPlace> places;
  std::vector<at::Tensor> inputs;
  int64_t rows = 0;
  for (const auto &chunk : chunks) {
    places.push_back(place_chunk(*chunk.state, rows, chunk.input.size(1), chunk.input.device()));
    rows += chunk.input.size(1);
    inputs.push_back(chunk.input);
  }
  // The products read the weights once for every chunk's rows; attention
  // runs chunk by chunk, each over its own cache.
  nn::LayerFeed layers(w.transformer, inputs[0].device());
  Residual x(rows_of(inputs), first_norm(w), f32);
  std::vector<at::Tensor> ys(places.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    yield_point();  // a long chunk gives way to others' steps between layers
    const auto &l = layers[i];
    const at::Tensor qkv = nn::linear(x.normed(), l.in_proj);
    for (size_t k = 0; k < places.size(); ++k) {
      const ChunkPlace &p = places[k];
      ys[k] = chunk_attention(c, qkv.narrow(1, p.row, p.T), p.state->kv, i, p.first, p.rot, p.mask);
    }
    x.add(nn::linear(rows_of(ys), l.out_proj), l.norm2_w);
    x.add(gated_silu(x.normed(), l.mlp_in, l.mlp_out), next_norm(w, i));
  }
  std::vector<at::Tensor> out;
  for (const ChunkPlace &p : places) {
    p.state->kv.written().narrow(0, p.first, p.T).fill_(true);
    p.state->kv.advance(p.T);
    p.state->offset += p.T;
    out.push_back(x.x().narrow(1, p.row, p.T));
  }
  return out;
}

void TemporalState::reset() {
  kv.reset();
  offset = 0;
}

int64_t kv_capacity(const LmConfig &c) {
  // The reference's ring of `context` slots labels its oldest slot as the
  // newest once full, so each step attends to the last context - 1 steps: a
  // plain ring of context - 1 slots.
  return std::max<int64_t>(1, c.context - 1);
}

KVRows new_kv_rows(const LmWeights &w, int64_t rows, KvFormat format) {
  const auto &c = w.config;
  return KVRows(c.num_layers, rows, c.num_heads, kv_capacity(c), c.dim / c.num_heads,
                at::TensorOptions().dtype(w.dtype).device(w.device()), format);
}

at::Tensor rope_frequencies(const LmWeights &w) {
  const auto &c = w.config;
  const int64_t head_dim = c.dim / c.num_heads;
  return at::exp(at::arange(head_dim / 2, at::TensorOptions().dtype(at::kFloat).device(w.device())) *
                 float(-std::log(c.max_period) * 2.0 / double(head_dim)));
}

at::Tensor first_norm(const LmWeights &w) {
  const auto &layers = w.transformer.layers;
  return layers.empty() ? at::Tensor() : layers[0].norm1_w;
}

at::Tensor next_norm(const LmWeights &w, size_t layer) {
  const auto &layers = w.transformer.layers;
  return layer + 1 < layers.size() ? layers[layer + 1].norm1_w : at::Tensor();
}

TemporalState new_temporal_state(const LmWeights &w, PinnedKVCache kv) {
  TemporalState s;
  s.kv = std::move(kv);
  s.freqs = rope_frequencies(w);
  return s;
}

TemporalState new_temporal_state(const LmWeights &w, KvFormat format) {
  const auto &c = w.config;
  auto opts = at::TensorOptions().dtype(w.dtype).device(w.device());
  return new_temporal_state(
      w, PinnedKVCache(c.num_layers, 1, c.num_heads, kv_capacity(c), c.dim / c.num_heads, opts, format));
}

at::Tensor temporal_step(const LmWeights &w, const at::Tensor &input, TemporalState &state,
                         const at::Tensor &where, bool split) {
  const auto &c = w.transformer.config;
  const bool f32 = c.norm == nn::Norm::RmsNormF32;
  const at::Tensor slot = where.narrow(0, 1, 1);
  const Rotation rot = rotation(state.freqs, where[0]);
  Rotation pinned_rot;
  if (split) pinned_rot = rotation(state.freqs, where[2]);
  state.kv.written().index_fill_(0, slot, true);
  const at::Tensor filled = chosen_written_extent(state.kv.written());
  nn::LayerFeed layers(w.transformer, input.device());
  Residual x(input, first_norm(w), f32);
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto &l = layers[i];
    x.add(self_attention(l, c, x.normed(), state.kv, i, slot, rot, split ? &pinned_rot : nullptr, filled),
          l.norm2_w);
    x.add(gated_silu(x.normed(), l.mlp_in, l.mlp_out), next_norm(w, i));
  }
  return x.x();
}

}  // namespace personaplex::lm
