#include "lm/model.h"

#include "lm/ops.h"

namespace personaplex::lm {

std::shared_ptr<const LmModel> LmModel::load(const std::string &weights_path,
                                             const std::string &config_path,
                                             const at::Device &device, at::ScalarType dtype,
                                             WeightFormat format, int64_t host_layers) {
  LmConfig config = config_path.empty() ? LmConfig::released() : LmConfig::from_json_file(config_path);
  return std::make_shared<const LmModel>(LmWeights::load(weights_path, config, device, dtype, format, host_layers));
}

at::Tensor LmModel::embed_column(const std::vector<int64_t> &column) const {
  return embed_columns(at::tensor(column, at::kLong).to(device()).view({1, -1}));
}

at::Tensor LmModel::embed_columns(const at::Tensor &ids) const {
  const auto &c = config();
  const int64_t R = ids.size(0);
  // Audio rows 1..n_q read their own table of the stacked [n_q, card+1, dim];
  // -1 embeds to zero and other negative ids read row 0, as in the reference.
  at::Tensor audio_ids = ids.narrow(1, 1, c.n_q);
  at::Tensor rows = at::embedding(w_->emb.view({-1, c.dim}),
                                  audio_ids.clamp_min(0) + at::arange(c.n_q, ids.options()) * (c.card + 1));
  at::Tensor audio = rows * (audio_ids != -1).unsqueeze(-1).to(rows.scalar_type());
  at::Tensor x = audio.sum(1) + embed(w_->text_emb, ids.select(1, 0));
  return x.view({R, 1, c.dim});
}

at::Tensor LmModel::out_norm(const at::Tensor &h) const {
  return rms_norm(h, w_->out_norm, config().norm == "rms_norm_f32");
}

at::Tensor LmModel::text_logits(const at::Tensor &normed) const {
  return nn::linear(normed, w_->text_linear).view({normed.size(0), -1}).to(at::kFloat);
}

}  // namespace personaplex::lm
