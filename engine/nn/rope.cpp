#include "nn/rope.h"

#include <cmath>

namespace personaplex::nn {

void apply_rope(at::Tensor &q, at::Tensor &k, const at::Tensor &positions, double max_period) {
  const int64_t D = q.size(-1);
  auto f32 = q.options().dtype(at::kFloat);
  at::Tensor freqs = at::exp(at::arange(D / 2, f32) * (-std::log(max_period) * 2.0 / D));
  // [T] -> [1, 1, T, 1]; [B, T] -> [B, 1, T, 1]
  at::Tensor ts = positions.to(at::kFloat);
  ts = ts.dim() == 1 ? ts.view({1, 1, -1, 1}) : ts.view({ts.size(0), 1, ts.size(1), 1});
  at::Tensor angle = ts * freqs;  // [., 1, T, D/2]
  at::Tensor cos = at::cos(angle), sin = at::sin(angle);
  auto rotate = [&](const at::Tensor &x) {
    at::Tensor pairs = x.to(at::kFloat).unflatten(-1, {D / 2, 2});
    at::Tensor re = pairs.select(-1, 0), im = pairs.select(-1, 1);
    at::Tensor out = at::stack({re * cos - im * sin, re * sin + im * cos}, -1);
    return out.flatten(-2).to(x.scalar_type());
  };
  q = rotate(q);
  k = rotate(k);
}

}  // namespace personaplex::nn
