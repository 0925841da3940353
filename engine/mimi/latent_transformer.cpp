#include "mimi/latent_transformer.h"

#include "io/safetensors.h"

namespace personaplex::mimi {

std::vector<std::pair<std::string, std::vector<int64_t>>> LatentTransformer::tensor_shapes(
    const std::string &prefix, const LatentTransformerConfig &c) {
  auto out = nn::TransformerWeights::tensor_shapes(prefix + ".transformer", c.core);
  const int64_t D = c.core.d_model;
  if (c.input_dimension != D) out.push_back({prefix + ".input_proj.weight", {D, c.input_dimension}});
  if (c.output_dimension != D) out.push_back({prefix + ".output_projs.0.weight", {c.output_dimension, D}});
  return out;
}

LatentTransformer LatentTransformer::load(const SafeTensors &file, const std::string &prefix,
                                          const LatentTransformerConfig &c, at::ScalarType dtype,
                                          const at::Device &device) {
  LatentTransformer t;
  t.transformer_ = std::make_shared<nn::Transformer>(
      nn::TransformerWeights::load(file, prefix + ".transformer", c.core, dtype, device));
  const int64_t D = c.core.d_model;
  if (c.input_dimension != D)
    t.input_proj_ = file.load(prefix + ".input_proj.weight", dtype, device,
                              std::vector<int64_t>{D, c.input_dimension});
  if (c.output_dimension != D)
    t.output_proj_ = file.load(prefix + ".output_projs.0.weight", dtype, device,
                               std::vector<int64_t>{c.output_dimension, D});
  return t;
}

nn::TransformerState LatentTransformer::new_state(int64_t batch, const at::TensorOptions &options,
                                                 const at::Tensor &active) const {
  return transformer_->new_state(batch, options, active);
}

at::Tensor LatentTransformer::project_in(const at::Tensor &x) const {
  at::Tensor y = x.transpose(1, 2);  // [B, T, D]
  return input_proj_.defined() ? at::linear(y, input_proj_) : y;
}

at::Tensor LatentTransformer::project_out(const at::Tensor &z) const {
  at::Tensor y = output_proj_.defined() ? at::linear(z, output_proj_) : z;
  return y.transpose(1, 2);
}

at::Tensor LatentTransformer::forward(const at::Tensor &x) const {
  return project_out(transformer_->forward(project_in(x)));
}

at::Tensor LatentTransformer::step(const at::Tensor &x, nn::TransformerState &state) const {
  return project_out(transformer_->forward(project_in(x), state));
}

}  // namespace personaplex::mimi
