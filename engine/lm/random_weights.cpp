#include "lm/random_weights.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "lm/sampling.h"

namespace personaplex::lm {

std::shared_ptr<const LmWeights> random_lm_weights(const LmConfig &c, const at::Device &device,
                                                   at::ScalarType dtype, uint64_t seed, double scale,
                                                   WeightFormat format) {
  c.validate("random weights");
  nn::check_weight_format(format, device, dtype);
  at::Generator gen = make_generator(device, seed);
  auto opts = at::TensorOptions().dtype(dtype).device(device);
  auto rnd = [&](std::vector<int64_t> shape) {
    return at::normal(0.0, scale, shape, gen, opts);
  };
  auto linear = [&](std::vector<int64_t> shape) { return nn::quantize(rnd(std::move(shape)), format); };
  auto ones = [&](int64_t d) { return at::ones({1, 1, d}, opts.dtype(at::kFloat)); };
  auto w = std::make_shared<LmWeights>();
  w->config = c;
  w->dtype = dtype;
  w->format = format;
  w->emb = rnd({c.n_q, c.card + 1, c.dim});
  w->text_emb = rnd({c.text_card + 1, c.dim});
  w->out_norm = ones(c.dim);
  w->text_linear = linear({c.text_out(), c.dim});
  nn::TransformerConfig t = c.temporal();
  w->transformer.config = t;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    nn::LayerWeights l;
    l.norm1_w = ones(c.dim);
    l.norm2_w = ones(c.dim);
    l.in_proj = linear({3 * c.dim, c.dim});
    l.out_proj = linear({c.dim, c.dim});
    l.mlp_in = linear({2 * t.gated_hidden(), c.dim});
    l.mlp_out = linear({c.dim, t.gated_hidden()});
    w->transformer.layers.push_back(std::move(l));
  }
  const int64_t d = c.depformer_dim, h = c.depformer_hidden();
  for (int64_t i = 0; i < c.depformer_num_layers; ++i) {
    DepformerLayerWeights l;
    l.norm1 = ones(d);
    l.norm2 = ones(d);
    for (int64_t k = 0; k < c.dep_q; ++k) {
      l.in_proj.push_back(linear({3 * d, d}));
      l.out_proj.push_back(linear({d, d}));
      l.mlp_in.push_back(linear({2 * h, d}));
      l.mlp_out.push_back(linear({d, h}));
    }
    w->depformer.push_back(std::move(l));
  }
  for (int64_t k = 0; k < (c.depformer_multi_linear ? c.dep_q : 1); ++k)
    w->depformer_in.push_back(linear({d, c.dim}));
  w->depformer_text_emb = rnd({c.text_card + 1, d});
  for (int64_t k = 0; k + 1 < c.dep_q; ++k) w->depformer_emb.push_back(rnd({c.card + 1, d}));
  for (int64_t k = 0; k < c.dep_q; ++k) w->linears.push_back(linear({c.card, d}));
  return w;
}

std::vector<TensorSpec> lm_weight_specs(const LmConfig &c, at::ScalarType dtype) {
  std::vector<TensorSpec> specs;
  auto add = [&](const std::string &name, std::vector<int64_t> shape) { specs.push_back({name, dtype, shape}); };
  auto idx = [](const std::string &prefix, int64_t k, const std::string &suffix) {
    return prefix + "." + std::to_string(k) + "." + suffix;
  };
  for (int64_t k = 0; k < c.n_q; ++k) add(idx("emb", k, "weight"), {c.card + 1, c.dim});
  add("text_emb.weight", {c.text_card + 1, c.dim});
  for (auto &t : nn::TransformerWeights::tensor_shapes("transformer", c.temporal())) add(t.first, t.second);
  add("out_norm.alpha", {1, 1, c.dim});
  add("text_linear.weight", {c.text_out(), c.dim});
  const int64_t d = c.depformer_dim, h = c.depformer_hidden();
  for (int64_t k = 0; k < (c.depformer_multi_linear ? c.dep_q : 1); ++k)
    add(idx("depformer_in", k, "weight"), {d, c.dim});
  for (int64_t k = 0; k + 1 < c.dep_q; ++k) add(idx("depformer_emb", k, "weight"), {c.card + 1, d});
  add("depformer_text_emb.weight", {c.text_card + 1, d});
  for (int64_t i = 0; i < c.depformer_num_layers; ++i) {
    const std::string p = "depformer.layers." + std::to_string(i) + ".";
    add(p + "norm1.alpha", {1, 1, d});
    add(p + "norm2.alpha", {1, 1, d});
    add(p + "self_attn.in_proj_weight", {c.dep_q * 3 * d, d});
    add(p + "self_attn.out_proj.weight", {c.dep_q * d, d});
    for (int64_t k = 0; k < c.dep_q; ++k) {
      add(p + idx("gating", k, "linear_in.weight"), {2 * h, d});
      add(p + idx("gating", k, "linear_out.weight"), {d, h});
    }
  }
  for (int64_t k = 0; k < c.dep_q; ++k) add(idx("linears", k, "weight"), {c.card, d});
  return specs;
}

namespace {

// Normal values for a large tensor, drawn in blocks on every core: one
// generator per block, seeded from (seed, tensor, block), so the result is
// the same whatever the thread count. A released-size model (8 G values)
// is made in seconds instead of minutes.
at::Tensor parallel_randn(const std::vector<int64_t> &shape, uint64_t seed, uint64_t tensor, double scale) {
  constexpr int64_t kBlock = int64_t(1) << 20;
  at::Tensor t = at::empty(shape, at::kFloat);
  float *data = t.data_ptr<float>();
  const int64_t n = t.numel(), blocks = (n + kBlock - 1) / kBlock;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed ^ (tensor << 40) ^ uint64_t(b) * 0x9E3779B97F4A7C15ull);
      at::from_blob(data + b * kBlock, {std::min(kBlock, n - b * kBlock)}, at::kFloat).normal_(0.0, scale, gen);
    }
  });
  return t;
}

}  // namespace

void write_random_lm_weights(const std::string &path, const LmConfig &c, at::ScalarType dtype, uint64_t seed,
                             double scale) {
  c.validate("random weights");
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  uint64_t index = 0;
  write_safetensors(
      path, lm_weight_specs(c, dtype),
      [&](const TensorSpec &s) {
        ++index;
        // Norm scales of one keep activations at the scale of the inputs.
        const bool norm = s.name.size() > 6 && s.name.compare(s.name.size() - 6, 6, ".alpha") == 0;
        if (norm) return at::ones(s.shape, f32).to(s.dtype);
        int64_t numel = 1;
        for (int64_t d : s.shape) numel *= d;
        // Small tensors (test and demo models) keep one generator's stream.
        at::Tensor t = numel >= (int64_t(1) << 22) ? parallel_randn(s.shape, seed, index, scale)
                                                    : at::randn(s.shape, gen, f32) * scale;
        return t.to(s.dtype);
      },
      {{"format", "pt"}});
}

}  // namespace personaplex::lm
