// The layout in which libtorch's convolutions read a filter. cuDNN's fastest
// bf16 kernels on recent GPUs read NHWC: given NCHW tensors it changes the
// layout of the input, the filter and the output at every call, and the
// filter's is the large one (up to 16.8 MB at Mimi's deepest layers, every
// frame). A filter kept channels-last once makes libtorch hand cuDNN NHWC
// tensors: the filter is read as it is, the input and output copied as
// before (small at the deep layers).
// PERSONAPLEX_CONV_FILTERS=nhwc keeps a channels-last copy of each filter
// for libtorch's convolutions (the kernels read the plain one), to measure
// it; not yet the default: it has not run on a GPU.
#pragma once

#include <ATen/ATen.h>

namespace personaplex::mimi {

// w [A, B, K] (a convolution's [out, in, K] or a transposed one's [in, out,
// K]) with the same elements laid out [A, K, B]: unsqueezed at dimension 2,
// as libtorch runs a 1-d convolution, a channels-last filter.
at::Tensor channels_last_filter(const at::Tensor &w);

// The filter libtorch's convolutions take for w: channels_last_filter(w)
// where chosen, else w itself.
at::Tensor libtorch_filter(const at::Tensor &w);

}  // namespace personaplex::mimi
