#include "mimi/quantizer.h"

#include "core/error.h"
#include "io/safetensors.h"

namespace personaplex::mimi {
namespace {

const char *const kFirst = "quantizer.rvq_first";
const char *const kRest = "quantizer.rvq_rest";

std::string level_prefix(const std::string &group, int64_t level) {
  return group + ".vq.layers." + std::to_string(level) + "._codebook.";
}

}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> SplitQuantizer::tensor_shapes(
    const QuantizerConfig &c) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  auto group = [&](const std::string &g, int64_t levels) {
    out.push_back({g + ".input_proj.weight", {c.dimension, c.input_dimension, 1}});
    out.push_back({g + ".output_proj.weight", {c.output_dimension, c.dimension, 1}});
    for (int64_t i = 0; i < levels; ++i) {
      out.push_back({level_prefix(g, i) + "_initialized", {1}});
      out.push_back({level_prefix(g, i) + "cluster_usage", {c.bins}});
      out.push_back({level_prefix(g, i) + "embedding_sum", {c.bins, c.dimension}});
    }
  };
  group(kFirst, c.n_q_semantic);
  group(kRest, c.n_q - c.n_q_semantic);
  return out;
}

SplitQuantizer::Group SplitQuantizer::load_group(const SafeTensors &file, const std::string &prefix,
                                                 const QuantizerConfig &c, int64_t levels,
                                                 const at::Device &device) {
  Group g;
  g.input_proj = file.load(prefix + ".input_proj.weight", at::kFloat, device,
                           std::vector<int64_t>{c.dimension, c.input_dimension, 1});
  g.output_proj = file.load(prefix + ".output_proj.weight", at::kFloat, device,
                            std::vector<int64_t>{c.output_dimension, c.dimension, 1});
  std::vector<at::Tensor> centroids;
  for (int64_t i = 0; i < levels; ++i) {
    std::string p = level_prefix(prefix, i);
    at::Tensor usage = file.load(p + "cluster_usage", at::kFloat, device, std::vector<int64_t>{c.bins});
    at::Tensor sum = file.load(p + "embedding_sum", at::kFloat, device,
                               std::vector<int64_t>{c.bins, c.dimension});
    // The EMA statistics give the centroids; epsilon as in the reference codebook.
    centroids.push_back(sum / usage.clamp_min(1e-5).unsqueeze(1));
  }
  if (levels == 0) return g;
  g.stacked = at::stack(centroids);
  g.norms = g.stacked.pow(2).sum(-1);
  for (int64_t i = 0; i < levels; ++i) {
    at::Tensor cb = g.stacked[i];
    g.codebooks.push_back(cb);
    at::Tensor cb1 = cb.unsqueeze(0), norm = cb1.pow(2).sum(-1, true);
    g.extended.push_back(at::cat({cb1, at::ones_like(norm), norm}, -1));
  }
  return g;
}

SplitQuantizer SplitQuantizer::load(const SafeTensors &file, const QuantizerConfig &c, int64_t num_codebooks,
                                    const at::Device &device) {
  SplitQuantizer q;
  q.bins_ = c.bins;
  q.first_ = load_group(file, kFirst, c, c.n_q_semantic, device);
  if (num_codebooks > c.n_q_semantic) q.rest_ = load_group(file, kRest, c, num_codebooks - c.n_q_semantic, device);
  std::vector<at::Tensor> projs;
  for (const Group *g : {&q.first_, &q.rest_}) {
    if (g->codebooks.empty()) continue;
    projs.push_back(g->input_proj.squeeze(-1));
    q.kernel_groups_.push_back({g->stacked, g->norms, g->output_proj.squeeze(-1).contiguous()});
  }
  q.input_projs_ = at::cat(projs).contiguous();
  return q;
}

int64_t SplitQuantizer::num_codebooks() const { return int64_t(first_.codebooks.size() + rest_.codebooks.size()); }

// Index of the codebook vector nearest to each row of `flat` [N, Q]. The
// reference takes argmin of torch.cdist, which for more than 25 rows or
// vectors computes sqrt(clamp(|x|^2 - 2 x.c + |c|^2)) as one matmul; the same
// operations here (so ties break alike), with the codebook's half precomputed.
at::Tensor SplitQuantizer::Group::nearest(const at::Tensor &flat, size_t level) const {
  at::Tensor x1 = flat.unsqueeze(0);
  const int64_t bins = codebooks[level].size(0);
  if (bins <= 25 && x1.size(1) <= 25) return at::cdist(x1, codebooks[level].unsqueeze(0)).squeeze(0).argmin(-1);
  at::Tensor norm = x1.pow(2).sum(-1, true);
  at::Tensor x1_ = at::cat({x1.mul(-2), norm, at::ones_like(norm)}, -1);
  at::Tensor dist = x1_.matmul(extended[level].transpose(-2, -1));
  dist.clamp_min_(0).sqrt_();
  return dist.squeeze(0).argmin(-1);
}

at::Tensor SplitQuantizer::Group::encode(const at::Tensor &latent) const {
  at::Tensor residual = at::conv1d(latent, input_proj);  // [B, Q, T]
  const int64_t B = residual.size(0), T = residual.size(2);
  std::vector<at::Tensor> codes;
  for (size_t level = 0; level < codebooks.size(); ++level) {
    at::Tensor flat = residual.transpose(1, 2).reshape({B * T, -1});
    at::Tensor idx = nearest(flat, level).view({B, T});
    residual = residual - at::embedding(codebooks[level], idx).transpose(1, 2);
    codes.push_back(idx);
  }
  return at::stack(codes, 1);
}

at::Tensor SplitQuantizer::Group::decode(const at::Tensor &codes) const {
  at::Tensor sum;
  for (size_t k = 0; k < codebooks.size(); ++k) {
    at::Tensor v = at::embedding(codebooks[k], codes.select(1, int64_t(k))).transpose(1, 2);
    sum = sum.defined() ? sum + v : v;
  }
  return at::conv1d(sum, output_proj);
}

at::Tensor SplitQuantizer::encode(const at::Tensor &latent) const {
  if (std::optional<at::Tensor> codes = fused_quantizer_encode(latent, input_projs_, kernel_groups_)) return *codes;
  at::Tensor x = latent.to(at::kFloat);
  at::Tensor codes = first_.encode(x);
  if (!rest_.codebooks.empty()) codes = at::cat({codes, rest_.encode(x)}, 1);
  return codes;
}

void SplitQuantizer::check_codes(const at::Tensor &codes) const {
  if (codes.dim() != 3 || codes.size(1) != num_codebooks())
    throw Error("Mimi: expected codes [B, " + std::to_string(num_codebooks()) + ", T], got " +
                shape_string(codes.sizes()));
  if (at::isFloatingType(codes.scalar_type()) || codes.scalar_type() == at::kBool)
    throw Error(std::string("Mimi: codes must be integers, got ") + c10::toString(codes.scalar_type()));
  at::Tensor bad = (codes < 0) | (codes >= bins_);
  if (!bad.any().item<bool>()) return;
  at::Tensor where = bad.nonzero()[0].cpu();
  const int64_t b = where[0].item<int64_t>(), k = where[1].item<int64_t>(), t = where[2].item<int64_t>();
  const int64_t value = codes[b][k][t].item<int64_t>();
  throw Error("Mimi: code " + std::to_string(value) + " (batch " + std::to_string(b) + ", codebook " +
              std::to_string(k) + ", step " + std::to_string(t) + ") is outside [0, " +
              std::to_string(bins_) + ")");
}

at::Tensor SplitQuantizer::decode(const at::Tensor &input) const {
  check_codes(input);
  return decode_unchecked(input.to(first_.input_proj.device(), at::kLong));
}

at::Tensor SplitQuantizer::decode_unchecked(const at::Tensor &codes, at::ScalarType dtype) const {
  if (std::optional<at::Tensor> out = fused_quantizer_decode(codes, kernel_groups_, dtype)) return *out;
  const int64_t nf = int64_t(first_.codebooks.size());
  at::Tensor out = first_.decode(codes.narrow(1, 0, nf));
  if (!rest_.codebooks.empty()) out = out + rest_.decode(codes.narrow(1, nf, codes.size(1) - nf));
  return out.to(dtype);
}

}  // namespace personaplex::mimi
