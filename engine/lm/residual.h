// The residual stream of a pre-norm transformer: x, and x normed for the
// next sublayer. Each addition and the norm after it are one launch on CUDA
// (nn::fused_add_rms_norm); elsewhere libtorch's addition and rms_norm.
// Where the product that reads the normed stream next takes the 8-bit
// activations' path, that launch also rounds its rows for it.
#pragma once

#include <ATen/ATen.h>

#include "nn/quantized_linear.h"

namespace personaplex::lm {

class Residual {
 public:
  // x, normed by the first sublayer's `alpha` (none: nothing normed).
  Residual(at::Tensor x, const at::Tensor &alpha, bool f32);

  const at::Tensor &x() const { return x_; }
  const at::Tensor &normed() const { return normed_; }
  // normed's rows rounded to 8 bits for the product named by the last add
  // (nn::linear(normed(), reader, normed_rows())); empty where not.
  const nn::QuantizedRows &normed_rows() const { return rows_; }
  // x += update, then normed by the next sublayer's `alpha` (none: the end,
  // nothing normed). `reader`: the product that reads normed next, or one
  // of its sizes and format.
  void add(const at::Tensor &update, const at::Tensor &alpha, const nn::LinearWeight *reader = nullptr);

 private:
  at::Tensor x_, normed_;
  nn::QuantizedRows rows_;
  bool f32_;
};

}  // namespace personaplex::lm
