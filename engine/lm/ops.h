// Small building blocks shared by the temporal and depth transformers.
#pragma once

#include <ATen/ATen.h>

#include "nn/quantized_linear.h"

namespace personaplex::lm {

// RMSNorm over the last dimension, computed in fp32 when `f32` (the
// reference's "rms_norm_f32", eps 1e-8) and in x's dtype otherwise (eps 1e-5).
at::Tensor rms_norm(const at::Tensor &x, const at::Tensor &alpha, bool f32);
double norm_eps(bool f32);
// Whether that norm is computed in fp32 (the fused kernels' arithmetic, so
// they may take it): rms_norm_f32, or x in fp32.
bool norm_in_fp32(const at::Tensor &x, bool f32);

// SiLU-gated MLP: linear_out(silu(a) * b) where [a, b] = linear_in(x).
// x_rows: x's rows in 8 bits for linear_in, if the launch that wrote x
// rounded them (nn::linear); the gate rounds its own for linear_out where
// that product takes them.
at::Tensor gated_silu(const at::Tensor &x, const nn::LinearWeight &w_in, const nn::LinearWeight &w_out,
                      const nn::QuantizedRows &x_rows = {});

// Embedding lookup where id -1 gives a zero row and other negative ids read
// row 0 (the reference clamps them). ids: int64 of any shape -> [..., dim].
at::Tensor embed(const at::Tensor &table, const at::Tensor &ids);

}  // namespace personaplex::lm
