#include "lm/residual.h"

#include "lm/ops.h"
#include "nn/fused_ops.h"

namespace personaplex::lm {

Residual::Residual(at::Tensor x, const at::Tensor &alpha, bool f32)
    : x_(std::move(x)), normed_(alpha.defined() ? rms_norm(x_, alpha, f32) : at::Tensor()), f32_(f32) {}

void Residual::add(const at::Tensor &update, const at::Tensor &alpha) {
  if (alpha.defined() && norm_in_fp32(x_, f32_))
    if (std::optional<nn::AddNormed> r = nn::fused_add_rms_norm(x_, update, alpha, norm_eps(f32_))) {
      x_ = std::move(r->sum);
      normed_ = std::move(r->normed);
      return;
    }
  x_ = x_ + update;
  normed_ = alpha.defined() ? rms_norm(x_, alpha, f32_) : at::Tensor();
}

}  // namespace personaplex::lm
