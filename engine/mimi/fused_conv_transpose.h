// A streaming transposed-convolution step through the CUDA kernel of
// cuda/conv_transpose1d_step.h (for mimi/conv.cpp): the new input's
// outputs with the carried overlap added, the new overlap kept in place and
// the next layer's ELU given along, in one launch.
#pragma once

#include <ATen/ATen.h>

#include "mimi/conv.h"

namespace personaplex::mimi {

// Whether the kernel takes this step: chosen for such a layer
// (mimi/fused_conv.h), x [B, C, T] on CUDA with time contiguous, fp32 or
// bf16 as the weights, a small batch, no rows mode, a stride of at most 8
// and a kernel of at most four strides, and T * stride >= kernel - stride
// (the kept overlap then comes from this step alone).
bool fused_conv_transpose_takes(const at::Tensor &x, const at::Tensor &weight, const ConvSpec &spec,
                                const ConvTrState &state);

// The step's outputs; state.partial (allocated on the first step) replaced
// by the new overlap.
ConvOutput fused_conv_transpose(const at::Tensor &x, const at::Tensor &weight, const at::Tensor &bias,
                                const ConvSpec &spec, ConvTrState &state, const ConvEpilogue &epilogue);

}  // namespace personaplex::mimi
