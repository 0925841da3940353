#include "core/cuda_kernels.h"

#include <cstdlib>

namespace personaplex {

bool cuda_kernels_enabled() {
#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
  static const bool disabled = std::getenv("PERSONAPLEX_NO_CUDA_KERNELS") != nullptr;
  return !disabled;
#else
  return false;
#endif
}

bool cuda_kernels_take(const at::Tensor &x) { return x.defined() && x.is_cuda() && cuda_kernels_enabled(); }

}  // namespace personaplex
