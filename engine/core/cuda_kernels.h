// Whether the engine's hand-written CUDA kernels (engine/cuda) may run.
#pragma once

#include <ATen/ATen.h>

namespace personaplex {

// Built in (a CUDA libtorch and nvcc: PERSONAPLEX_HAVE_CUDA_KERNELS), and not
// turned off by PERSONAPLEX_NO_CUDA_KERNELS in the environment (to compare
// against libtorch's paths).
bool cuda_kernels_enabled();

// The same, for a tensor on a CUDA device.
bool cuda_kernels_take(const at::Tensor &x);

}  // namespace personaplex
