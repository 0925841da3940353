// The LM's weights: loaded once, immutable, shared by every conversation
// (std::shared_ptr<const LmWeights>). Tensor names are the reference state
// dict's; every shape is checked against the config.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "lm/config.h"
#include "nn/transformer.h"

namespace personaplex::lm {

// One depformer layer, with one set of weights per codebook step.
struct DepformerLayerWeights {
  at::Tensor norm1, norm2;              // RMSNorm scales [1, 1, d]
  // Per step (views sharing storage where steps share weights):
  std::vector<at::Tensor> in_proj;      // [3d, d]
  std::vector<at::Tensor> out_proj;     // [d, d]
  std::vector<at::Tensor> mlp_in;       // [2h, d]
  std::vector<at::Tensor> mlp_out;      // [d, h]
};

struct LmWeights {
  LmConfig config;
  at::ScalarType dtype = at::kFloat;

  at::Tensor emb;          // audio embeddings, stacked: [n_q, card + 1, dim]
  at::Tensor text_emb;     // [text_card + 1, dim]
  nn::TransformerWeights transformer;
  at::Tensor out_norm;     // [1, 1, dim]
  at::Tensor text_linear;  // [text_out, dim]

  std::vector<at::Tensor> depformer_in;   // dep_q (one when not multi-linear) x [d, dim]
  at::Tensor depformer_text_emb;          // [text_card + 1, d]
  std::vector<at::Tensor> depformer_emb;  // dep_q - 1 x [card + 1, d]
  std::vector<DepformerLayerWeights> depformer;
  std::vector<at::Tensor> linears;        // dep_q x [card, d]

  at::Device device() const { return text_emb.device(); }

  // Loads a checkpoint; a depformer saved with 8 steps where the config has
  // 16 gets steps 0-7 copied into 8-15, as the reference loader does. Throws
  // Error naming the file and tensor on a missing tensor or a shape that does
  // not match the config.
  static std::shared_ptr<const LmWeights> load(const std::string &path, const LmConfig &config,
                                               const at::Device &device, at::ScalarType dtype);
};

}  // namespace personaplex::lm
