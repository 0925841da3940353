#include "lm/temporal_ops.h"

#include <torch/version.h>

#include <cmath>
#include <limits>

#include "nn/fused_ops.h"

namespace personaplex::lm {

Rotation rotation(const at::Tensor &freqs, const at::Tensor &positions) {
  at::Tensor angle = positions.to(at::kFloat).unsqueeze(-1) * freqs;
  return {at::cos(angle), at::sin(angle)};
}

at::Tensor rotate(const at::Tensor &x, const Rotation &r) {
  if (std::optional<at::Tensor> y = nn::fused_rotary(x, r.cos, r.sin)) return *y;
  at::Tensor pairs = x.to(at::kFloat).unflatten(-1, {-1, 2});
  at::Tensor re = pairs.select(-1, 0), im = pairs.select(-1, 1);
  return at::stack({re * r.cos - im * r.sin, re * r.sin + im * r.cos}, -1).flatten(-2).to(x.scalar_type());
}

at::Tensor masked_attention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                            const at::Tensor &mask) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, mask);
#else
  at::Tensor s = (at::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(q.size(-1)))).to(at::kFloat);
  s = mask.scalar_type() == at::kBool
          ? s.masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity())
          : s + mask.to(at::kFloat);
  return at::matmul(at::softmax(s, -1).to(v.scalar_type()), v);
#endif
}

}  // namespace personaplex::lm
