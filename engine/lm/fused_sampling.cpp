#include "lm/fused_sampling.h"

#include "core/cuda_kernels.h"
#include "core/error.h"
#include "lm/sampling.h"

#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "cuda/sample_top_k.h"
#endif

namespace personaplex::lm {

std::optional<at::Tensor> fused_sample_top_k(const at::Tensor &logits, double temperature, int64_t top_k,
                                             const at::Tensor &noise) {
#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
  namespace cu = personaplex::cuda;
  if (!cuda_kernels_take(logits) || logits.dim() == 0 || logits.scalar_type() != at::kFloat ||
      !logits.is_contiguous() || logits.numel() == 0 || !(temperature > 0.0))
    return std::nullopt;
  const int64_t vocab = logits.size(-1);
  auto noise_shape = logits.sizes().vec();
  noise_shape.back() = race_size(vocab, top_k);
  if (!cu::sample_top_k_fits(vocab, top_k) || !noise.defined() || noise.sizes() != at::IntArrayRef(noise_shape) ||
      noise.scalar_type() != at::kFloat || !noise.is_contiguous() || noise.device() != logits.device())
    return std::nullopt;
  auto out_shape = logits.sizes().vec();
  out_shape.pop_back();
  at::Tensor out = at::empty(out_shape, logits.options().dtype(at::kLong));
  cu::TopKSample a;
  a.logits = logits.data_ptr<float>();
  a.noise = noise.data_ptr<float>();
  a.out = out.data_ptr<int64_t>();
  a.rows = logits.numel() / vocab;
  a.vocab = int(vocab);
  a.k = top_k >= vocab ? 0 : int(std::max<int64_t>(top_k, 0));
  a.temperature = float(temperature);
  const cudaError_t e = cu::sample_top_k(a, c10::cuda::getCurrentCUDAStream(logits.device().index()).stream());
  if (e != cudaSuccess) throw Error(std::string("top-k sampling kernel: ") + cudaGetErrorString(e));
  return out;
#else
  (void)logits, (void)temperature, (void)top_k, (void)noise;
  return std::nullopt;
#endif
}

}  // namespace personaplex::lm
