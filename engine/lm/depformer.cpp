#include "lm/depformer.h"

#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "lm/ops.h"
#include "lm/residual.h"
#include "nn/fused_ops.h"

namespace personaplex::lm {
namespace {

// The per-layer cache of one depformer pass: slot k holds step k.
struct StepCache {
  at::Tensor keys, values;  // [B, H, steps, Dh]
};

at::Tensor attend(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v);
#else
  at::Tensor s = at::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(q.size(-1)));
  return at::matmul(at::softmax(s.to(at::kFloat), -1).to(v.scalar_type()), v);
#endif
}

// Layer l's attention for step k: the step's key and value into slot k of
// the cache, its query over the window ending there.
at::Tensor attention_step(const DepformerLayerWeights &l, int64_t heads, const at::Tensor &h,
                          const nn::QuantizedRows &h_rows, StepCache &cache, int64_t k, int64_t capacity) {
  const int64_t B = h.size(0);
  // The reference's ring cache of dep_q slots labels its oldest slot as the
  // newest once full, which hides step 0 from the last step: a window of
  // dep_q - 1 steps.
  const int64_t first = std::max<int64_t>(0, k - (capacity - 2));
  at::Tensor projected = nn::linear(h, l.in_proj[k], h_rows);  // [B, 1, 3d]
  std::optional<at::Tensor> y = nn::fused_step_attention(projected, cache.keys, cache.values, k, first);
  if (!y) {
    at::Tensor qkv = projected.view({B, 1, 3, heads, -1}).permute({2, 0, 3, 1, 4});
    cache.keys.narrow(2, k, 1).copy_(qkv[1]);
    cache.values.narrow(2, k, 1).copy_(qkv[2]);
    y = attend(qkv[0], cache.keys.narrow(2, first, k + 1 - first), cache.values.narrow(2, first, k + 1 - first))
            .transpose(1, 2)
            .reshape({B, 1, -1});
  }
  return nn::linear(*y, l.out_proj[k]);
}

}  // namespace

void depformer_run(const LmWeights &w, DepformerIo &io, int64_t steps, const SamplingParams &sampling) {
  const auto &c = w.config;
  const at::Tensor &h = io.h;
  const int64_t B = h.size(0), heads = c.depformer_num_heads;
  const bool f32 = c.norm == "rms_norm_f32";
  std::vector<StepCache> caches(w.depformer.size());
  for (auto &sc : caches) {
    sc.keys = at::empty({B, heads, std::max<int64_t>(steps, 1), c.depformer_dim / heads}, h.options());
    sc.values = at::empty_like(sc.keys);
  }
  const auto &layers = w.depformer;
  // The norm before layer i's attention (none past the last layer).
  auto attention_norm = [&](size_t i) { return i < layers.size() ? layers[i].norm1 : at::Tensor(); };
  at::Tensor prev = io.text;
  for (int64_t k = 0; k < steps; ++k) {
    const nn::LinearWeight &proj = w.depformer_in[c.depformer_multi_linear ? k : 0];
    const at::Tensor &table = k == 0 ? w.depformer_text_emb : w.depformer_emb[k - 1];
    Residual x(nn::linear(h, proj) + embed(table, prev.view({B, 1})), attention_norm(0), f32);
    for (size_t i = 0; i < layers.size(); ++i) {
      const DepformerLayerWeights &l = layers[i];
      x.add(attention_step(l, heads, x.normed(), x.normed_rows(), caches[i], k, c.dep_q), l.norm2, &l.mlp_in[k]);
      x.add(gated_silu(x.normed(), l.mlp_in[k], l.mlp_out[k], x.normed_rows()), attention_norm(i + 1),
            i + 1 < layers.size() ? &layers[i + 1].in_proj[k] : nullptr);
    }
    at::Tensor lg = nn::linear(x.x(), w.linears[k]).view({B, -1}).to(at::kFloat);
    at::Tensor tok = sample_with_noise(lg, sampling.greedy, sampling.temp_audio, sampling.top_k_audio,
                                       io.noise[k]);
    prev = at::where(io.forced_mask.select(1, k), io.forced.select(1, k), tok);
    io.tokens.select(1, k).copy_(tok);
    if (io.logits.defined()) io.logits.select(1, k).copy_(lg);
  }
}

}  // namespace personaplex::lm
