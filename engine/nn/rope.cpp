#include "nn/rope.h"

#include <cmath>

#include "nn/fused_ops.h"

namespace personaplex::nn {

at::Tensor rope_rotate(const at::Tensor &x, const RopeTables &t) {
  if (std::optional<at::Tensor> y = fused_rotary(x, t.cos, t.sin)) return *y;
  const int64_t D = x.size(-1);
  at::Tensor pairs = x.to(at::kFloat).unflatten(-1, {D / 2, 2});
  at::Tensor re = pairs.select(-1, 0), im = pairs.select(-1, 1);
  at::Tensor out = at::stack({re * t.cos - im * t.sin, re * t.sin + im * t.cos}, -1);
  return out.flatten(-2).to(x.scalar_type());
}

at::Tensor rope_frequencies(int64_t head_dim, double max_period, const at::Device &device) {
  auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  return at::exp(at::arange(head_dim / 2, f32) * (-std::log(max_period) * 2.0 / head_dim));
}

RopeTables rope_tables(const at::Tensor &positions, const at::Tensor &frequencies) {
  // [T] -> [1, 1, T, 1]; [B, T] -> [B, 1, T, 1]
  at::Tensor ts = positions.to(at::kFloat);
  ts = ts.dim() == 1 ? ts.view({1, 1, -1, 1}) : ts.view({ts.size(0), 1, ts.size(1), 1});
  at::Tensor angle = ts * frequencies;  // [., 1, T, D/2]
  return {at::cos(angle), at::sin(angle)};
}

void apply_rope(at::Tensor &q, at::Tensor &k, const RopeTables &tables) {
  q = rope_rotate(q, tables);
  k = rope_rotate(k, tables);
}

void apply_rope(at::Tensor &q, at::Tensor &k, const at::Tensor &positions, double max_period) {
  apply_rope(q, k, rope_tables(positions, rope_frequencies(q.size(-1), max_period, q.device())));
}

}  // namespace personaplex::nn
