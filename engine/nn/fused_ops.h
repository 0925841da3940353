// The small steps of a transformer layer as one CUDA launch each
// (engine/cuda): RMSNorm and LayerNorm (with the residual addition before
// them), the SiLU gate, rotary embedding, the depth transformer's attention
// step, a streaming attention step over a ring KV cache. At batch 1 a
// step is bound by its number of launches, not its bytes: libtorch takes
// about eight launches for each of these.
//
// Each returns nothing where its kernel does not take these tensors (not on
// CUDA, a dtype or layout it does not handle, a build without the kernels,
// PERSONAPLEX_NO_CUDA_KERNELS set): the caller then runs its libtorch path,
// which computes the same values.
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include "nn/quantized_linear.h"

namespace personaplex::nn {

// x * (alpha / sqrt(mean(x^2, -1) + eps)) computed in fp32, in x's dtype
// (bf16 or fp32); alpha fp32 of x's last size (any leading ones).
std::optional<at::Tensor> fused_rms_norm(const at::Tensor &x, const at::Tensor &alpha, double eps);

// x + update (rounded to x's dtype) and its RMSNorm as above, in one
// launch: the residual stream and the next sublayer's input. With
// rows_type (quantized_rows_type of the product that reads `normed`), the
// same launch also rounds normed's rows for it where the kernel takes that
// (bf16); `rows` is left empty otherwise.
struct AddNormed {
  at::Tensor sum, normed;
  QuantizedRows rows;
};
std::optional<AddNormed> fused_add_rms_norm(const at::Tensor &x, const at::Tensor &update, const at::Tensor &alpha,
                                            double eps, std::optional<at::ScalarType> rows_type = std::nullopt);

// silu(a) * b where [a, b] are the halves of h's last dimension.
std::optional<at::Tensor> fused_silu_gate(const at::Tensor &h);

// The same, its rows also rounded to rows_type (quantized_rows_type of the
// product that reads it) in the same launch: nothing where the kernel does
// not take that (bf16, the gate's width a multiple of 8).
struct Gated {
  at::Tensor out;
  QuantizedRows rows;
};
std::optional<Gated> fused_silu_gate_rows(const at::Tensor &h, at::ScalarType rows_type);

// Each interleaved pair (re, im) of x's last dimension rotated by the angle
// whose fp32 cos and sin broadcast against x's pairs [..., D / 2]; up to
// five dimensions. The result is contiguous.
std::optional<at::Tensor> fused_rotary(const at::Tensor &x, const at::Tensor &cos, const at::Tensor &sin);

// One step of attention over a short per-row cache: qkv [B, 1, 3 * H * Dh]
// (the step's projection) has its key and value written at `slot` of keys
// and values [B, H, S, Dh], then its query attends to slots first..slot.
// Returns [B, 1, H * Dh] (heads side by side).
std::optional<at::Tensor> fused_step_attention(const at::Tensor &qkv, const at::Tensor &keys,
                                               const at::Tensor &values, int64_t slot, int64_t first);

// x + scale * update (each rounded to x's dtype; no scale: x + update) and
// its LayerNorm (weight, bias of x's dtype; bias may be undefined), in one
// launch. Without update: x's LayerNorm alone, and `sum` is x.
struct NormedSum {
  at::Tensor sum, normed;
};
std::optional<NormedSum> fused_layer_norm(const at::Tensor &x, const at::Tensor &update, const at::Tensor &scale,
                                          const at::Tensor &weight, const at::Tensor &bias, double eps);

// Whether fused_ring_attention takes a step of T queries of activations
// like x (device, dtype) with these sizes; decided before the step so that
// its caller derives no mask or angles it would not use.
bool ring_attention_takes(const at::Tensor &x, int64_t queries, int64_t heads, int64_t head_dim, int64_t slots);

// One streaming attention step over a ring KV cache (cuda/ring_attention.h):
// qkv [B, T, 3 * H * Dh] (the projection) has its keys rotated by
// `frequencies` (fp32 [Dh / 2]; undefined: no rotation) and written with
// its values at slots step % S of keys and values [B, H, S, Dh], then each
// query attends over the slots the reference's ring labelling lets it see.
// steps: int64 [1] (all rows) or [B], each row's first query's step.
// Returns [B, T, H * Dh].
std::optional<at::Tensor> fused_ring_attention(const at::Tensor &qkv, const at::Tensor &keys, const at::Tensor &values,
                                               const at::Tensor &steps, const at::Tensor &frequencies);

}  // namespace personaplex::nn
