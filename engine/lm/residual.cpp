#include "lm/residual.h"

#include "lm/ops.h"
#include "nn/fused_ops.h"

namespace personaplex::lm {

Residual::Residual(at::Tensor x, const at::Tensor &alpha, bool f32)
    : x_(std::move(x)), normed_(alpha.defined() ? rms_norm(x_, alpha, f32) : at::Tensor()), f32_(f32) {}

void Residual::add(const at::Tensor &update, const at::Tensor &alpha, const nn::LinearWeight *reader) {
  rows_ = {};
  if (alpha.defined() && norm_in_fp32(x_, f32_)) {
    const int64_t rows = x_.dim() == 0 || x_.size(-1) == 0 ? 0 : x_.numel() / x_.size(-1);
    const std::optional<at::ScalarType> type =
        reader ? nn::quantized_rows_type(*reader, rows, x_.scalar_type()) : std::nullopt;
    if (std::optional<nn::AddNormed> r = nn::fused_add_rms_norm(x_, update, alpha, norm_eps(f32_), type)) {
      x_ = std::move(r->sum);
      normed_ = std::move(r->normed);
      rows_ = std::move(r->rows);
      return;
    }
  }
  x_ = x_ + update;
  normed_ = alpha.defined() ? rms_norm(x_, alpha, f32_) : at::Tensor();
}

}  // namespace personaplex::lm
