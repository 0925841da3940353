// What the temporal transformer's single and batched steps share: the
// interleaved RoPE rotation and attention over a masked KV cache.
#pragma once

#include <ATen/ATen.h>

namespace personaplex::lm {

// Interleaved RoPE with the reference's arithmetic: fp32 angles and rotation.
struct Rotation {
  at::Tensor cos, sin;  // fp32 [..., D/2], broadcast against the rotated [..., D/2]
};

// At `positions` (int64, any shape P, on the device): cos/sin [P..., D/2].
Rotation rotation(const at::Tensor &freqs, const at::Tensor &positions);

// x [..., D] rotated pairwise, in x's dtype.
at::Tensor rotate(const at::Tensor &x, const Rotation &r);

// Queries [B, H, Tq, D] over keys and values [B, H, S, D]. `mask`, broadcast
// to [B, H, Tq, S], is bool (true: attend) or additive in the query's dtype
// (-inf: skip), as scaled_dot_product_attention takes it.
at::Tensor masked_attention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                            const at::Tensor &mask);

}  // namespace personaplex::lm
