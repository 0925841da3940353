#include "nn/attention.h"

#include <cmath>
#include <torch/version.h>

namespace personaplex::nn {

at::Tensor attention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                     const at::Tensor &mask) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, mask);
#else
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(q.size(-1)));
  scores = scores.masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity());
  return at::matmul(at::softmax(scores, -1), v);
#endif
}

at::Tensor causal_window_mask(const at::Tensor &q_pos, const at::Tensor &k_pos, int64_t context) {
  if (q_pos.dim() == 2) {
    at::Tensor k = k_pos.unsqueeze(1);  // [B, 1, Tk]
    at::Tensor delta = q_pos.unsqueeze(2) - k;
    return ((k >= 0) & (delta >= 0) & (delta < context)).unsqueeze(1);
  }
  at::Tensor delta = q_pos.view({-1, 1}) - k_pos.view({1, -1});
  return (k_pos.view({1, -1}) >= 0) & (delta >= 0) & (delta < context);
}

}  // namespace personaplex::nn
