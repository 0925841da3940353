// Rotary position embedding, interleaved convention: the head dimension is
// read as D/2 (real, imaginary) pairs, pair i rotated by pos * max_period^(-2i/D).
#pragma once

#include <ATen/ATen.h>

namespace personaplex::nn {

// q, k: [B, H, T, D]. positions: [T] or [B, T] (int64, absolute step index).
// Rotation is computed in fp32 and cast back to q's dtype.
void apply_rope(at::Tensor &q, at::Tensor &k, const at::Tensor &positions, double max_period);

}  // namespace personaplex::nn
