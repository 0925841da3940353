// Rotary position embedding, interleaved convention: the head dimension is
// read as D/2 (real, imaginary) pairs, pair i rotated by pos * max_period^(-2i/D).
#pragma once

#include <ATen/ATen.h>

namespace personaplex::nn {

// q, k: [B, H, T, D]. positions: [T] or [B, T] (int64, absolute step index).
// Rotation is computed in fp32 and cast back to q's dtype.
void apply_rope(at::Tensor &q, at::Tensor &k, const at::Tensor &positions, double max_period);

// The same in two halves, so that a caller rotating many layers at the same
// positions derives the angles once.
struct RopeTables {
  at::Tensor cos, sin;  // fp32, [1, 1, T, D/2] or [B, 1, T, D/2]
};
// Per-pair frequencies max_period^(-2i/D), fp32 [D/2] on `device`.
at::Tensor rope_frequencies(int64_t head_dim, double max_period, const at::Device &device);
RopeTables rope_tables(const at::Tensor &positions, const at::Tensor &frequencies);
void apply_rope(at::Tensor &q, at::Tensor &k, const RopeTables &tables);
// Rotates any [..., T, D] tensor (e.g. q and k stacked) at once.
at::Tensor rope_rotate(const at::Tensor &x, const RopeTables &tables);

}  // namespace personaplex::nn
