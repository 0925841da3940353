// The float types of the small fused kernels' activations (their inputs and
// outputs share one), for host code that sees no CUDA float headers.
#pragma once

namespace personaplex::cuda {

enum class Floats { kFloat32, kBFloat16 };

}  // namespace personaplex::cuda
