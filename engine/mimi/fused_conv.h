// A streaming convolution step through the CUDA kernel of
// cuda/conv1d_step.h (for mimi/conv.cpp): the context and the new input read
// in place, bias, skip and ELU applied on the way out, in one launch.
#pragma once

#include <ATen/ATen.h>

#include "mimi/conv.h"

namespace personaplex::mimi {

// Which layers the convolution kernels (this one and the transposed one,
// mimi/fused_conv_transpose.h) take: none, those where they were measured
// faster than libtorch's launches (the default: at one row, the long
// outputs near the sample rate on the tensor cores, the first layer's few
// channels, the depthwise upsampling), or every layer they can at up to
// kMaxConvKernelBatch rows (to measure the rest).
// PERSONAPLEX_CONV_KERNEL=0, 1 or all in the environment, else the default.
// Read at each call, which a CUDA graph's replays do not make.
enum class ConvKernels { kNone, kMeasured, kAll };
ConvKernels conv_kernels_chosen();

// Past a few rows there is arithmetic enough for cuDNN's tensor-core
// products to beat the kernels, launches and layout changes included.
constexpr int64_t kMaxConvKernelBatch = 8;

// Whether the kernel takes input x, these weights and `frames` outputs:
// chosen for such a layer, CUDA, a build with the kernels, fp32 or bf16
// alike, no groups, x's time contiguous, a small batch.
bool fused_conv_takes(const at::Tensor &x, const at::Tensor &weight, int64_t groups, int64_t frames);

// `frames` outputs of the window over [previous, x] (previous contiguous,
// [B, C_in, P]), with the epilogue's skip and outputs.
ConvOutput fused_conv(const at::Tensor &x, const at::Tensor &previous, const at::Tensor &weight,
                      const at::Tensor &bias, const ConvEpilogue &epilogue, int64_t stride, int64_t dilation,
                      int64_t frames);

}  // namespace personaplex::mimi
