// A streaming convolution step through the CUDA kernel of
// cuda/conv1d_step.h (for mimi/conv.cpp): the context and the new input read
// in place, bias, skip and ELU applied on the way out, in one launch.
//
// Opt-in (PERSONAPLEX_CONV_KERNEL=1) until it beats libtorch's launches: on
// an H200 it takes ~52 us a convolution at batch 1 where libtorch's seven
// launches take ~24 us (its lanes split the input channels, so each load of
// a warp touches 32 rows: next, lanes along time).
#pragma once

#include <ATen/ATen.h>

#include "mimi/conv.h"

namespace personaplex::mimi {

// Whether the kernel takes input x and these weights: chosen, CUDA, a build
// with the kernels, fp32 or bf16 alike, no groups, x's time contiguous, a small batch
// (past it cuDNN's tensor-core products are faster than one thread an output).
bool fused_conv_takes(const at::Tensor &x, const at::Tensor &weight, int64_t groups);

// `frames` outputs of the window over [previous, x] (previous contiguous,
// [B, C_in, P]), with the epilogue's skip and outputs.
ConvOutput fused_conv(const at::Tensor &x, const at::Tensor &previous, const at::Tensor &weight,
                      const at::Tensor &bias, const ConvEpilogue &epilogue, int64_t stride, int64_t dilation,
                      int64_t frames);

}  // namespace personaplex::mimi
