#include "lm/weights.h"

#include <algorithm>
#include <set>

#include "core/device.h"
#include "core/error.h"
#include "io/safetensors.h"

namespace personaplex::lm {
namespace {

const char *kHint = " (does the config match these weights?)";

std::string shape_str(const std::vector<int64_t> &s) { return shape_string(s); }

class Loader {
 public:
  Loader(const SafeTensors &file, const at::Device &device, WeightFormat format)
      : f_(file), device_(device), format_(format) {}

  bool has(const std::string &name) const { return f_.contains(name); }

  std::vector<int64_t> shape(const std::string &name) const {
    if (!f_.contains(name)) throw Error(f_.path() + ": missing tensor '" + name + "'" + kHint);
    return f_.info(name).shape;
  }

  at::Tensor get(const std::string &name, const std::vector<int64_t> &expected,
                 at::ScalarType dtype) const {
    auto actual = shape(name);
    if (actual != expected)
      throw Error(f_.path() + ": tensor '" + name + "' has shape " + shape_str(actual) +
                  " but the config implies " + shape_str(expected) + kHint);
    return f_.load(name, dtype, device_);
  }

  // A linear weight, quantized as soon as it is on the device.
  nn::LinearWeight linear(const std::string &name, const std::vector<int64_t> &expected,
                          at::ScalarType dtype) const {
    return quantize(get(name, expected, dtype), name);
  }
  // `w`, one step's slice of the tensor `name`, in the weight format.
  nn::LinearWeight quantize(const at::Tensor &w, const std::string &name) const {
    return nn::quantize(w, format_, name);
  }

 private:
  const SafeTensors &f_;
  at::Device device_;
  WeightFormat format_;
};

std::string idx(const std::string &prefix, int64_t i) { return prefix + "." + std::to_string(i); }

// Steps stored for the depformer: the config's, or 8 for a checkpoint the
// reference loader expands to 16.
int64_t stored_steps(const Loader &L, const LmConfig &c) {
  auto s = L.shape("depformer.layers.0.self_attn.in_proj_weight");
  const int64_t per_step = 3 * c.depformer_dim;
  if (s.size() == 2 && s[0] == 8 * per_step && c.dep_q == 16) return 8;
  return c.dep_q;
}

// Index of the stored tensor that serves step `k` (the reference copies 0-7 into 8-15).
int64_t source_step(int64_t k, int64_t stored) { return k < stored ? k : k - 8; }

void load_depformer(const Loader &L, const LmConfig &c, at::ScalarType dtype,
                    at::ScalarType norm_dtype, LmWeights &w) {
  const int64_t d = c.depformer_dim, h = c.depformer_hidden(), steps = c.dep_q;
  const int64_t stored = stored_steps(L, c);
  for (int64_t i = 0; i < c.depformer_num_layers; ++i) {
    const std::string p = idx("depformer.layers", i) + ".";
    DepformerLayerWeights l;
    l.norm1 = L.get(p + "norm1.alpha", {1, 1, d}, norm_dtype);
    l.norm2 = L.get(p + "norm2.alpha", {1, 1, d}, norm_dtype);
    at::Tensor in = L.get(p + "self_attn.in_proj_weight", {stored * 3 * d, d}, dtype)
                        .view({stored, 3 * d, d});
    at::Tensor out =
        L.get(p + "self_attn.out_proj.weight", {stored * d, d}, dtype).view({stored, d, d});
    for (int64_t k = 0; k < steps; ++k) {
      const int64_t s = source_step(k, stored);
      if (s != k) {
        l.in_proj.push_back(l.in_proj[s]);
        l.out_proj.push_back(l.out_proj[s]);
        l.mlp_in.push_back(l.mlp_in[s]);
        l.mlp_out.push_back(l.mlp_out[s]);
        continue;
      }
      l.in_proj.push_back(L.quantize(in[k], p + "self_attn.in_proj_weight"));
      l.out_proj.push_back(L.quantize(out[k], p + "self_attn.out_proj.weight"));
      const std::string g = p + idx("gating", k) + ".";
      l.mlp_in.push_back(L.linear(g + "linear_in.weight", {2 * h, d}, dtype));
      l.mlp_out.push_back(L.linear(g + "linear_out.weight", {d, h}, dtype));
    }
    w.depformer.push_back(std::move(l));
  }
  // Steps past the stored ones share the tensors of step k - 8.
  auto per_step = [&](const std::string &prefix, int64_t count, std::vector<int64_t> shape,
                      std::vector<nn::LinearWeight> &out) {
    for (int64_t k = 0; k < count; ++k) {
      const int64_t s = source_step(k, stored);
      out.push_back(s != k ? out[s] : L.linear(idx(prefix, k) + ".weight", shape, dtype));
    }
  };
  per_step("depformer_in", c.depformer_multi_linear ? steps : 1, {d, c.dim}, w.depformer_in);
  w.depformer_text_emb = L.get("depformer_text_emb.weight", {c.text_card + 1, d}, dtype);
  // An 8-step file has no embedding feeding step 8 (the user's first
  // codebook, never used for the agent): it gets zeros.
  for (int64_t k = 0; k + 1 < steps; ++k) {
    const std::vector<int64_t> shape = {c.card + 1, d};
    if (k + 1 < stored)
      w.depformer_emb.push_back(L.get(idx("depformer_emb", k) + ".weight", shape, dtype));
    else if (k >= 8)
      w.depformer_emb.push_back(w.depformer_emb[k - 8]);
    else
      w.depformer_emb.push_back(at::zeros(shape, w.depformer_text_emb.options()));
  }
  per_step("linears", steps, {c.card, d}, w.linears);
}

}  // namespace

std::shared_ptr<const LmWeights> LmWeights::load(const std::string &path, const LmConfig &config,
                                                 const at::Device &device, at::ScalarType dtype,
                                                 WeightFormat format, int64_t host_layers) {
  config.validate(path);
  if (host_layers < 0 || host_layers > config.num_layers)
    throw Error(path + ": cannot keep " + std::to_string(host_layers) + " layers in host memory: the model has " +
                std::to_string(config.num_layers));
  nn::check_weight_format(format, device, dtype);
  SafeTensors file(path);
  Loader L(file, device, format);
  auto w = std::make_shared<LmWeights>();
  const LmConfig &c = config;
  w->config = c;
  w->dtype = dtype;
  w->format = format;
  const auto norm_kind = nn::TransformerConfig::parse_norm(c.norm);
  const auto norm_dtype = norm_kind == nn::Norm::RmsNormF32 ? at::kFloat : dtype;
  if (norm_kind == nn::Norm::LayerNorm)
    throw Error(path + ": LM norm 'layer_norm' is not supported");

  w->emb = at::empty({c.n_q, c.card + 1, c.dim}, at::TensorOptions().dtype(dtype).device(device));
  for (int64_t k = 0; k < c.n_q; ++k)
    w->emb[k].copy_(L.get(idx("emb", k) + ".weight", {c.card + 1, c.dim}, dtype));
  w->text_emb = L.get("text_emb.weight", {c.text_card + 1, c.dim}, dtype);
  w->out_norm = L.get("out_norm.alpha", {1, 1, c.dim}, norm_dtype);
  w->text_linear = L.linear("text_linear.weight", {c.text_out(), c.dim}, dtype);
  try {
    w->transformer =
        nn::TransformerWeights::load(file, "transformer", c.temporal(), dtype, device, format, host_layers);
  } catch (const Error &e) {
    throw Error(std::string(e.what()) + kHint);
  }
  load_depformer(L, c, dtype, norm_dtype, *w);
  if (format != WeightFormat::kAsLoaded || host_layers > 0) release_cached_memory(device);
  return w;
}

int64_t LmWeights::host_layers() const {
  return std::count_if(transformer.layers.begin(), transformer.layers.end(),
                       [](const nn::LayerWeights &l) { return l.host; });
}

int64_t LmWeights::nbytes() const { return bytes(false); }
int64_t LmWeights::host_nbytes() const { return bytes(true); }

int64_t LmWeights::bytes(bool host_only) const {
  std::set<const void *> seen;
  int64_t total = 0;
  bool host = false;  // whether what is added now is kept in host memory
  auto add = [&](const at::Tensor &t) {
    if (t.defined() && (host || !host_only) && seen.insert(t.data_ptr()).second) total += int64_t(t.nbytes());
  };
  auto add_linear = [&](const nn::LinearWeight &l) {
    add(l.weight);
    add(l.scale);
  };
  auto add_linears = [&](const std::vector<nn::LinearWeight> &v) {
    for (const auto &l : v) add_linear(l);
  };
  for (const auto *t : {&emb, &text_emb, &out_norm, &depformer_text_emb}) add(*t);
  for (const auto &t : depformer_emb) add(t);
  add_linear(text_linear);
  add_linears(depformer_in);
  add_linears(linears);
  for (const auto &l : transformer.layers) {
    for (const auto *t : {&l.norm1_w, &l.norm1_b, &l.norm2_w, &l.norm2_b, &l.scale1, &l.scale2}) add(*t);
    host = l.host;
    for (const auto *lw : {&l.in_proj, &l.out_proj, &l.mlp_in, &l.mlp_out}) add_linear(*lw);
    host = false;
  }
  for (const auto &l : depformer) {
    add(l.norm1);
    add(l.norm2);
    for (const auto *v : {&l.in_proj, &l.out_proj, &l.mlp_in, &l.mlp_out}) add_linears(*v);
  }
  return total;
}

}  // namespace personaplex::lm
