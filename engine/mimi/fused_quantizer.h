// The split quantizer's frame on CUDA (engine/cuda/residual_quantizer.h):
// encoding in one launch per level after one product for both groups' input
// projections, decoding in one launch, where libtorch takes about a dozen
// launches a level. Same distances, same fp32 subtraction and sums; codes
// may differ only where two distances are within rounding of each other.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <vector>

namespace personaplex::mimi {

// One group's tensors, fp32 on the device.
struct QuantizerGroupTensors {
  at::Tensor codebooks;    // [levels, bins, Q]
  at::Tensor norms;        // [levels, bins]: the vectors' squared norms
  at::Tensor output_proj;  // [D, Q]
};

// latent [B, D, T] -> int64 codes [B, levels of all groups, T]; input_projs
// [groups * Q, D] fp32 (the groups' projections stacked). Nothing where the
// kernels do not take them (not CUDA, a build without them, other sizes):
// the caller then runs libtorch's path.
std::optional<at::Tensor> fused_quantizer_encode(const at::Tensor &latent, const at::Tensor &input_projs,
                                                 const std::vector<QuantizerGroupTensors> &groups);

// codes [B, levels of all groups, T] (int64 on the device, each in range) ->
// the summed projections [B, D, T] in `dtype` (fp32 or bf16).
std::optional<at::Tensor> fused_quantizer_decode(const at::Tensor &codes,
                                                 const std::vector<QuantizerGroupTensors> &groups,
                                                 at::ScalarType dtype);

}  // namespace personaplex::mimi
