// A loaded PersonaPlex LM: weights plus the per-step computations that do
// not depend on a conversation (token embedding, heads). Immutable and shared
// (std::shared_ptr<const LmModel>) by any number of Conversations.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "lm/config.h"
#include "lm/kv_format.h"
#include "lm/weights.h"

namespace personaplex::lm {

class LmModel {
 public:
  // `config_path` "" = the released configuration. dtype: bf16 on CUDA and
  // fp32 on CPU are the usual choices (see default_dtype()). `format`: how
  // the linear weights are stored (see nn/quantized_linear.h);
  // `host_layers`: how many layers stay in host memory (LmWeights).
  static std::shared_ptr<const LmModel> load(const std::string &weights_path,
                                             const std::string &config_path,
                                             const at::Device &device, at::ScalarType dtype,
                                             WeightFormat format = WeightFormat::kAsLoaded,
                                             int64_t host_layers = 0);
  // `kv`: how conversations on this model store their temporal KV caches.
  explicit LmModel(std::shared_ptr<const LmWeights> weights, KvFormat kv = KvFormat::kModelDtype)
      : w_(std::move(weights)), kv_(kv) {}
  // The same weights (not copied) with another KV cache format.
  std::shared_ptr<const LmModel> with_kv_format(KvFormat kv) const {
    return std::make_shared<const LmModel>(w_, kv);
  }

  const LmConfig &config() const { return w_->config; }
  const LmWeights &weights() const { return *w_; }
  at::Device device() const { return w_->device(); }
  at::ScalarType dtype() const { return w_->dtype; }
  WeightFormat weight_format() const { return w_->format; }
  KvFormat kv_format() const { return kv_; }

  // The summed input embedding of one ring column (num_streams ids: text,
  // then audio; -1 embeds to zero): [1, 1, dim].
  at::Tensor embed_column(const std::vector<int64_t> &column) const;
  // The same for many columns at once, on the device (reads nothing from
  // the host, so a CUDA graph can hold it): int64 [R, num_streams] -> [R, 1, dim].
  at::Tensor embed_columns(const at::Tensor &ids) const;
  // out_norm then text_linear: [1, 1, dim] -> normed h, fp32 logits [1, text_out].
  at::Tensor out_norm(const at::Tensor &h) const;
  at::Tensor text_logits(const at::Tensor &normed) const;

 private:
  std::shared_ptr<const LmWeights> w_;
  KvFormat kv_ = KvFormat::kModelDtype;
};

}  // namespace personaplex::lm
