// The transformer between SEANet and the quantizer (and its mirror in the
// decoder), on latents in conv layout [B, D, T], with the optional
// input/output projections the reference adds when d_model differs from the
// latent width.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mimi/config.h"
#include "nn/transformer.h"

namespace personaplex::mimi {

class LatentTransformer {
 public:
  LatentTransformer() = default;
  // prefix: "encoder_transformer" or "decoder_transformer".
  static LatentTransformer load(const SafeTensors &file, const std::string &prefix,
                                const LatentTransformerConfig &config, at::ScalarType dtype,
                                const at::Device &device);
  static std::vector<std::pair<std::string, std::vector<int64_t>>> tensor_shapes(
      const std::string &prefix, const LatentTransformerConfig &config);

  nn::TransformerState new_state(int64_t batch, const at::TensorOptions &options,
                                 const at::Tensor &active = {}) const;
  at::Tensor forward(const at::Tensor &x) const;                            // whole sequence
  at::Tensor step(const at::Tensor &x, nn::TransformerState &state) const;  // T more steps

 private:
  at::Tensor project_in(const at::Tensor &x) const;
  at::Tensor project_out(const at::Tensor &z) const;

  std::shared_ptr<nn::Transformer> transformer_;
  at::Tensor input_proj_, output_proj_;  // undefined when the widths match
};

}  // namespace personaplex::mimi
