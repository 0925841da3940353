// Top-k sampling in one CUDA launch (engine/cuda/sample_top_k.h) for the
// tensors of sample_with_noise: the same draw from the same noise, where
// libtorch takes about ten launches.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>

namespace personaplex::lm {

// logits fp32 [..., V] and noise fp32 [..., race_size(V, top_k)] on one CUDA
// device -> int64 [...]; temperature > 0. Nothing where the kernel does not
// take them (not CUDA, other dtypes or layouts, top_k past its limit, a build
// without the kernels): the caller then runs libtorch's path.
std::optional<at::Tensor> fused_sample_top_k(const at::Tensor &logits, double temperature, int64_t top_k,
                                             const at::Tensor &noise);

}  // namespace personaplex::lm
