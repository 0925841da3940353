// The residual stream of a pre-norm transformer: x, and x normed for the
// next sublayer. Each addition and the norm after it are one launch on CUDA
// (nn::fused_add_rms_norm); elsewhere libtorch's addition and rms_norm.
#pragma once

#include <ATen/ATen.h>

namespace personaplex::lm {

class Residual {
 public:
  // x, normed by the first sublayer's `alpha` (none: nothing normed).
  Residual(at::Tensor x, const at::Tensor &alpha, bool f32);

  const at::Tensor &x() const { return x_; }
  const at::Tensor &normed() const { return normed_; }
  // x += update, then normed by the next sublayer's `alpha` (none: the end,
  // nothing normed).
  void add(const at::Tensor &update, const at::Tensor &alpha);

 private:
  at::Tensor x_, normed_;
  bool f32_;
};

}  // namespace personaplex::lm
