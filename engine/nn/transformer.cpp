#include "nn/transformer.h"

#include <tuple>

#include "core/error.h"
#include "core/host_upload.h"
#include "io/safetensors.h"
#include "nn/attention.h"
#include "nn/fused_ops.h"
#include "nn/rope.h"

namespace personaplex::nn {

Norm TransformerConfig::parse_norm(const std::string &name) {
  if (name == "layer_norm") return Norm::LayerNorm;
  if (name == "rms_norm") return Norm::RmsNorm;
  if (name == "rms_norm_f32") return Norm::RmsNormF32;
  throw Error("unsupported norm '" + name + "'");
}

Mlp TransformerConfig::parse_gating(const std::string &name) {
  if (name == "none") return Mlp::Gelu;
  if (name == "silu") return Mlp::SiluGated;
  throw Error("unsupported gating '" + name + "'");
}

int64_t TransformerConfig::gated_hidden() const {
  return dim_feedforward == 4 * d_model ? (21 * d_model) / 8 : (2 * dim_feedforward) / 3;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> TransformerWeights::tensor_shapes(
    const std::string &prefix, const TransformerConfig &c) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  const int64_t D = c.d_model;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    std::string p = prefix + ".layers." + std::to_string(i) + ".";
    for (const char *n : {"norm1", "norm2"}) {
      if (c.norm == Norm::LayerNorm) {
        out.push_back({p + n + ".weight", {D}});
        out.push_back({p + n + ".bias", {D}});
      } else {
        out.push_back({p + n + ".alpha", {1, 1, D}});
      }
    }
    out.push_back({p + "self_attn.in_proj_weight", {3 * D, D}});
    out.push_back({p + "self_attn.out_proj.weight", {D, D}});
    if (c.mlp == Mlp::Gelu) {
      out.push_back({p + "linear1.weight", {c.dim_feedforward, D}});
      out.push_back({p + "linear2.weight", {D, c.dim_feedforward}});
    } else {
      out.push_back({p + "gating.linear_in.weight", {2 * c.gated_hidden(), D}});
      out.push_back({p + "gating.linear_out.weight", {D, c.gated_hidden()}});
    }
    if (c.layer_scale) {
      out.push_back({p + "layer_scale_1.scale", {D}});
      out.push_back({p + "layer_scale_2.scale", {D}});
    }
  }
  return out;
}

TransformerWeights TransformerWeights::load(const SafeTensors &file, const std::string &prefix,
                                            const TransformerConfig &c, at::ScalarType dtype,
                                            const at::Device &device, WeightFormat format,
                                            int64_t host_layers) {
  if (host_layers < 0 || host_layers > c.num_layers)
    throw Error(prefix + ": " + std::to_string(host_layers) + " layers in host memory, of " +
                std::to_string(c.num_layers));
  if (c.d_model % c.num_heads != 0)
    throw Error(prefix + ": d_model " + std::to_string(c.d_model) +
                " is not a multiple of num_heads " + std::to_string(c.num_heads));
  TransformerWeights w;
  w.config = c;
  // RMSNorm in fp32 keeps its scale in fp32 too.
  auto norm_dtype = c.norm == Norm::RmsNormF32 ? at::kFloat : dtype;
  auto get = [&](const std::string &name, std::vector<int64_t> shape, at::ScalarType dt) {
    return file.load(name, dt, device, shape);
  };
  bool host = false;  // of the layer being loaded
  auto linear_weight = [&](const std::string &name, std::vector<int64_t> shape) {
    LinearWeight w = quantize(get(name, shape, dtype), format, name);
    if (host) {
      w.weight = to_host_for(w.weight, device);
      if (w.scale.defined()) w.scale = to_host_for(w.scale, device);
    }
    return w;
  };
  const int64_t D = c.d_model;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    std::string p = prefix + ".layers." + std::to_string(i) + ".";
    LayerWeights l;
    host = l.host = i >= c.num_layers - host_layers;
    if (c.norm == Norm::LayerNorm) {
      l.norm1_w = get(p + "norm1.weight", {D}, dtype);
      l.norm1_b = get(p + "norm1.bias", {D}, dtype);
      l.norm2_w = get(p + "norm2.weight", {D}, dtype);
      l.norm2_b = get(p + "norm2.bias", {D}, dtype);
    } else {
      l.norm1_w = get(p + "norm1.alpha", {1, 1, D}, norm_dtype);
      l.norm2_w = get(p + "norm2.alpha", {1, 1, D}, norm_dtype);
    }
    l.in_proj = linear_weight(p + "self_attn.in_proj_weight", {3 * D, D});
    l.out_proj = linear_weight(p + "self_attn.out_proj.weight", {D, D});
    if (c.mlp == Mlp::Gelu) {
      l.mlp_in = linear_weight(p + "linear1.weight", {c.dim_feedforward, D});
      l.mlp_out = linear_weight(p + "linear2.weight", {D, c.dim_feedforward});
    } else {
      l.mlp_in = linear_weight(p + "gating.linear_in.weight", {2 * c.gated_hidden(), D});
      l.mlp_out = linear_weight(p + "gating.linear_out.weight", {D, c.gated_hidden()});
    }
    if (c.layer_scale) {
      l.scale1 = get(p + "layer_scale_1.scale", {D}, dtype);
      l.scale2 = get(p + "layer_scale_2.scale", {D}, dtype);
    }
    w.layers.push_back(std::move(l));
  }
  return w;
}

void TransformerState::reset_rows(const at::Tensor &mask) { step.masked_fill_(mask, 0); }

void TransformerState::reset() {
  for (auto &c : caches) c.reset();
  offset = 0;
  if (step.defined()) step.zero_();
}

Transformer::Transformer(TransformerWeights weights) : w_(std::move(weights)) {
  const auto &c = w_.config;
  at::Device device = w_.layers.empty() ? at::Device(at::kCPU) : w_.layers[0].in_proj.weight.device();
  frequencies_ = rope_frequencies(c.d_model / c.num_heads, c.max_period, device);
  slot_ids_ = at::arange(c.context, at::TensorOptions().dtype(at::kLong).device(device));
}

TransformerState Transformer::new_state(int64_t batch, const at::TensorOptions &options,
                                        const at::Tensor &active) const {
  const auto &c = w_.config;
  TransformerState s;
  for (int64_t i = 0; i < c.num_layers; ++i)
    s.caches.emplace_back(batch, c.num_heads, c.context, c.d_model / c.num_heads, options);
  s.step = at::zeros({active.defined() ? batch : 1}, options.dtype(at::kLong));
  s.active = active;
  return s;
}

struct Transformer::StepContext {
  RopeTables rope;
  at::Tensor mask;   // [T, keys]; rows mode [B, 1, T, keys]
  at::Tensor slots;  // [T], streaming only; rows mode [B, T]
  at::Tensor steps;  // set when the ring attention kernel runs the step: [1] or [B]
};

at::Tensor Transformer::norm(const at::Tensor &x, const at::Tensor &w, const at::Tensor &b) const {
  switch (w_.config.norm) {
    case Norm::LayerNorm:
      return at::layer_norm(x, {x.size(-1)}, w, b, 1e-5);
    case Norm::RmsNorm:
    case Norm::RmsNormF32: {
      const double eps = w_.config.norm == Norm::RmsNorm ? 1e-5 : 1e-8;
      if (w_.config.norm == Norm::RmsNormF32 || x.scalar_type() == at::kFloat)
        if (std::optional<at::Tensor> y = fused_rms_norm(x, w, eps)) return *y;
      at::Tensor xf = w_.config.norm == Norm::RmsNormF32 ? x.to(at::kFloat) : x;
      at::Tensor var = eps + xf.pow(2).mean(-1, /*keepdim=*/true);
      return (xf * (w.to(var.scalar_type()) * at::rsqrt(var))).to(x.scalar_type());
    }
  }
  return x;
}

namespace {

// The residual stream after a sublayer: x + scale * update (layer scale).
at::Tensor add_scaled(const at::Tensor &x, const at::Tensor &update, const at::Tensor &scale) {
  return x + (scale.defined() ? scale * update : update);
}

}  // namespace

std::pair<at::Tensor, at::Tensor> Transformer::add_then_norm(const at::Tensor &x, const at::Tensor &update,
                                                             const at::Tensor &scale, const at::Tensor &w,
                                                             const at::Tensor &b) const {
  if (w_.config.norm == Norm::LayerNorm)
    if (std::optional<NormedSum> r = fused_layer_norm(x, update, scale, w, b, 1e-5)) return {r->sum, r->normed};
  at::Tensor sum = add_scaled(x, update, scale);
  return {sum, norm(sum, w, b)};
}

at::Tensor Transformer::mlp(const LayerWeights &l, const at::Tensor &x) const {
  if (w_.config.mlp == Mlp::Gelu) return linear(at::gelu(linear(x, l.mlp_in)), l.mlp_out);
  if (std::optional<at::Tensor> gate = linear_silu_gate(x, l.mlp_in)) return linear(*gate, l.mlp_out);
  at::Tensor h = linear(x, l.mlp_in);
  if (std::optional<at::Tensor> gate = fused_silu_gate(h)) return linear(*gate, l.mlp_out);
  h = h.unflatten(-1, {2, -1});
  return linear(at::silu(h.select(-2, 0)) * h.select(-2, 1), l.mlp_out);
}

at::Tensor Transformer::self_attention(const LayerWeights &l, const at::Tensor &x, const StepContext &ctx,
                                       RingKVCache *cache) const {
  const auto &c = w_.config;
  const int64_t B = x.size(0), T = x.size(1), H = c.num_heads;
  // [B, T, 3D] -> [3, B, H, T, Dh]
  if (ctx.steps.defined()) {
    at::Tensor qkv = linear(x, l.in_proj).contiguous();
    std::optional<at::Tensor> y = fused_ring_attention(qkv, cache->keys(), cache->values(), ctx.steps,
                                                       c.rope ? frequencies_ : at::Tensor());
    if (!y) throw Error("ring attention: the kernel declined a step it was chosen for");
    cache->wrote(T);
    return linear(*y, l.out_proj);
  }
  at::Tensor qkv = linear(x, l.in_proj).view({B, T, 3, H, -1}).permute({2, 0, 3, 1, 4});
  // q and k rotated together: the same arithmetic, half the kernels.
  at::Tensor qk = c.rope ? rope_rotate(qkv.narrow(0, 0, 2), ctx.rope) : qkv.narrow(0, 0, 2);
  at::Tensor q = qk[0], k = qk[1], v = qkv[2];
  at::Tensor y;
  if (cache) {
    cache->write(k, v, ctx.slots);
    y = attention(q, cache->keys(), cache->values(), ctx.mask);
  } else {
    y = attention(q, k, v, ctx.mask);
  }
  return linear(y.transpose(1, 2).reshape({B, T, -1}), l.out_proj);
}

at::Tensor Transformer::run_layers(const at::Tensor &input, TransformerState *state,
                                   const StepContext &ctx) const {
  const size_t n = w_.layers.size();
  if (n == 0) return input;
  // Contiguous, so that the fused norms take the residual stream.
  at::Tensor x = input.contiguous();
  at::Tensor normed = norm(x, w_.layers[0].norm1_w, w_.layers[0].norm1_b);
  for (size_t i = 0; i < n; ++i) {
    const LayerWeights &l = w_.layers[i];
    RingKVCache *cache = state ? &state->caches[i] : nullptr;
    at::Tensor update = self_attention(l, normed, ctx, cache);
    std::tie(x, normed) = add_then_norm(x, update, l.scale1, l.norm2_w, l.norm2_b);
    update = mlp(l, normed);
    if (i + 1 < n)
      std::tie(x, normed) = add_then_norm(x, update, l.scale2, w_.layers[i + 1].norm1_w, w_.layers[i + 1].norm1_b);
    else
      x = add_scaled(x, update, l.scale2);
  }
  return x;
}

Transformer::StepContext Transformer::streaming_context(const at::Tensor &input, const TransformerState &state,
                                                        const at::Tensor &steps) const {
  const auto &c = w_.config;
  const int64_t T = input.size(1), C = c.context;
  StepContext ctx;
  if (ring_attention_takes(input, T, c.num_heads, c.d_model / c.num_heads, C) && !state.caches.empty()) {
    ctx.steps = state.step;
    return ctx;
  }
  auto longs = at::TensorOptions().dtype(at::kLong).device(input.device());
  at::Tensor positions = steps + at::arange(T, longs);  // [T] or [B, T]
  ctx.slots = at::remainder(positions, C);
  ctx.mask = causal_window_mask(positions, RingKVCache::labels(steps + T, slot_ids_, C), C);
  if (c.rope) ctx.rope = rope_tables(positions, frequencies_);
  return ctx;
}

at::Tensor Transformer::forward(const at::Tensor &input, TransformerState &state) const {
  const int64_t T = input.size(1);
  auto longs = at::TensorOptions().dtype(at::kLong).device(input.device());
  if (!state.step.defined()) state.step = at::full({1}, state.offset, longs);
  if (state.active.defined()) return forward_rows(input, state);
  // Everything below is derived on the device from state.step.
  at::Tensor x = run_layers(input, &state, streaming_context(input, state, state.step));
  state.step.add_(T);
  state.offset += T;
  return x;
}

// Rows mode: the same per row, from each row's own position.
at::Tensor Transformer::forward_rows(const at::Tensor &input, TransformerState &state) const {
  const int64_t B = input.size(0), T = input.size(1);
  at::Tensor x = run_layers(input, &state, streaming_context(input, state, state.step.view({B, 1})));
  state.step.add_(state.active.to(at::kLong) * T);
  state.offset += T;
  return x;
}

at::Tensor Transformer::forward(const at::Tensor &input) const {
  at::Tensor positions = at::arange(input.size(1), at::TensorOptions().dtype(at::kLong).device(input.device()));
  StepContext ctx;
  ctx.mask = causal_window_mask(positions, positions, w_.config.context);
  if (w_.config.rope) ctx.rope = rope_tables(positions, frequencies_);
  return run_layers(input, nullptr, ctx);
}

}  // namespace personaplex::nn
