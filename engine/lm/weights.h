// The LM's weights: loaded once, immutable, shared by every conversation
// (std::shared_ptr<const LmWeights>). Tensor names are the reference state
// dict's; every shape is checked against the config. Linear weights may be
// stored quantized (nn::WeightFormat); embeddings and norms never are.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "lm/config.h"
#include "nn/quantized_linear.h"
#include "nn/transformer.h"

namespace personaplex::lm {

using nn::WeightFormat;

// One depformer layer, with one set of weights per codebook step.
struct DepformerLayerWeights {
  at::Tensor norm1, norm2;              // RMSNorm scales [1, 1, d]
  // Per step (views sharing storage where steps share weights):
  std::vector<nn::LinearWeight> in_proj;   // [3d, d]
  std::vector<nn::LinearWeight> out_proj;  // [d, d]
  std::vector<nn::LinearWeight> mlp_in;    // [2h, d]
  std::vector<nn::LinearWeight> mlp_out;   // [d, h]
};

struct LmWeights {
  LmConfig config;
  at::ScalarType dtype = at::kFloat;  // compute dtype: embeddings, activations, KV cache
  WeightFormat format = WeightFormat::kAsLoaded;  // of the linear weights

  at::Tensor emb;          // audio embeddings, stacked: [n_q, card + 1, dim]
  at::Tensor text_emb;     // [text_card + 1, dim]
  nn::TransformerWeights transformer;
  at::Tensor out_norm;     // [1, 1, dim]
  nn::LinearWeight text_linear;  // [text_out, dim]

  std::vector<nn::LinearWeight> depformer_in;  // dep_q (one when not multi-linear) x [d, dim]
  at::Tensor depformer_text_emb;          // [text_card + 1, d]
  std::vector<at::Tensor> depformer_emb;  // dep_q - 1 x [card + 1, d]
  std::vector<DepformerLayerWeights> depformer;
  std::vector<nn::LinearWeight> linears;  // dep_q x [card, d]

  at::Device device() const { return text_emb.device(); }
  // Temporal layers that keep their linear weights in host memory, uploaded
  // each step while the layers before them run (nn::LayerFeed): device
  // memory for PCIe time.
  int64_t host_layers() const;
  // Bytes of every tensor, those shared between steps counted once.
  int64_t nbytes() const;
  // The part of nbytes() kept in host memory.
  int64_t host_nbytes() const;

  // Loads a checkpoint; a depformer saved with 8 steps where the config has
  // 16 gets steps 0-7 copied into 8-15, as the reference loader does. Throws
  // Error naming the file and tensor on a missing tensor or a shape that does
  // not match the config. With a quantized `format`, each linear weight is
  // quantized on the device as soon as it is loaded, so memory peaks near the
  // quantized size; Error when the format cannot run there. The last
  // `host_layers` (0 to num_layers, else Error) stay in host memory.
  static std::shared_ptr<const LmWeights> load(const std::string &path, const LmConfig &config,
                                               const at::Device &device, at::ScalarType dtype,
                                               WeightFormat format = WeightFormat::kAsLoaded,
                                               int64_t host_layers = 0);

 private:
  int64_t bytes(bool host_only) const;
};

}  // namespace personaplex::lm
