// Scaled dot-product attention with a boolean mask (true = may attend), on
// whichever libtorch is present: the fused kernel on 2.x, plain math on 1.13.
#pragma once

#include <ATen/ATen.h>

namespace personaplex::nn {

// q: [B, H, Tq, D]; k, v: [B, H, Tk, D]; mask broadcastable to [B, H, Tq, Tk].
at::Tensor attention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                     const at::Tensor &mask);

// The streaming causal mask: query at step pq may see a key at step pk when
// pk >= 0, pk <= pq and pq - pk < context. q_pos: [Tq], k_pos: [Tk] -> [Tq, Tk];
// per row (independent streams in one batch): q_pos [B, Tq], k_pos [B, Tk]
// -> [B, 1, Tq, Tk].
at::Tensor causal_window_mask(const at::Tensor &q_pos, const at::Tensor &k_pos, int64_t context);

}  // namespace personaplex::nn
