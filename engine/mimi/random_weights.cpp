#include "mimi/random_weights.h"

#include <ATen/CPUGeneratorImpl.h>

#include "io/safetensors.h"
#include "mimi/latent_transformer.h"
#include "mimi/quantizer.h"
#include "mimi/latent_resample.h"
#include "mimi/seanet.h"

namespace personaplex::mimi {
namespace {

bool ends_with(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_norm(const std::string &name) {
  return name.find(".norm1.") != std::string::npos || name.find(".norm2.") != std::string::npos;
}

// A value that keeps the network well-behaved for each kind of tensor.
at::Tensor random_tensor(const TensorSpec &s, at::Generator &gen, double scale) {
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  if (is_norm(s.name)) return ends_with(s.name, ".bias") ? at::zeros(s.shape, f32) : at::ones(s.shape, f32);
  if (ends_with(s.name, ".scale")) return at::full(s.shape, 0.01, f32);  // layer scale
  if (ends_with(s.name, "cluster_usage") || ends_with(s.name, "_initialized")) return at::ones(s.shape, f32);
  if (ends_with(s.name, "embedding_sum")) return at::randn(s.shape, gen, f32);
  return at::randn(s.shape, gen, f32) * scale;
}

}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> mimi_tensor_shapes(const MimiConfig &c) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  auto add = [&](std::vector<std::pair<std::string, std::vector<int64_t>>> v) {
    for (auto &t : v) out.push_back(std::move(t));
  };
  add(Seanet::tensor_shapes(c.seanet, Seanet::Role::Encoder));
  add(Seanet::tensor_shapes(c.seanet, Seanet::Role::Decoder));
  add(LatentTransformer::tensor_shapes("encoder_transformer", c.transformer));
  add(LatentTransformer::tensor_shapes("decoder_transformer", c.transformer));
  if (c.resample_stride() > 1) {
    add(downsample_spec(c).tensor_shapes(false));
    add(upsample_spec(c).tensor_shapes(true));
  }
  add(SplitQuantizer::tensor_shapes(c.quantizer));
  return out;
}

void write_random_weights(const std::string &path, const MimiConfig &config, uint64_t seed, double scale) {
  config.validate("random Mimi weights");
  std::vector<TensorSpec> specs;
  for (auto &t : mimi_tensor_shapes(config)) specs.push_back({t.first, at::kFloat, t.second});
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  write_safetensors(
      path, specs, [&](const TensorSpec &s) { return random_tensor(s, gen, scale); },
      {{"format", "pt"}, {"config", config.to_json()}});
}

}  // namespace personaplex::mimi
